"""What the network metrics (LPIPS, DISTS, MUSIQ, CLIP-IQA) share: their input convention and
their frame.

Inputs are prepared as the SSL paper's evaluation scripts prepare them: RGB, both images on
the 8-bit grid (the SR output quantised, as it would be saved), values k / 255 in [0, 1],
float32, the border cropped as for PSNR (``scale`` pixels on benchmark sets, ``scale + 6``
elsewhere).  Networks run in float32 (autocast and TF32 off), in eval mode, without gradients.
"""
import contextlib

import torch
import torch.nn as nn

import imageops
from metric import _pixel


def rgb01(img, rgb_range):
    """[B, 3, H, W] in [0, rgb_range] -> float32 on the 8-bit grid, k / 255 in [0, 1]."""
    return imageops.to_uint8(img, rgb_range).float().div(255.0)


class FrozenMetric(nn.Module):
    """Frame of a network metric: never in training mode, knows the device its network lives
    on, and prepares its input images (``prepared``). Subclasses set ``label`` and
    ``min_side`` (the smallest image side the network accepts after the border is cropped).
    """

    label = ''
    min_side = 1

    def __init__(self, rgb_range, crop='edsr'):
        super().__init__()
        self.rgb_range = rgb_range
        self.crop = crop        # --crop_border (see _pixel.border)
        # Follows .to(device), so forward knows where the network lives.
        self.register_buffer('_anchor', torch.zeros(0), persistent=False)

    def train(self, mode=True):
        # A fixed measuring instrument: never in training mode.
        return super().train(False)

    def prepared(self, img, scale, benchmark):
        """[B, 3, H, W] (or [3, H, W]) in [0, rgb_range] -> the border cropped, k / 255 float32
        on the network's device. ValueError for non-RGB input or an image too small to score."""
        if img.dim() == 3:
            img = img.unsqueeze(0)
        if img.shape[1] != 3:
            raise ValueError(f'{self.label} needs RGB images, got {img.shape[1]} channels')
        shave = _pixel.border(scale, benchmark, self.crop)
        h, w = img.shape[-2:]
        if min(h, w) - 2 * shave < self.min_side:
            raise ValueError(f'image {h}x{w} is too small for {self.label} (at least '
                             f'{self.min_side} pixels per side after cropping {shave})')
        if shave > 0:
            img = img[..., shave:-shave, shave:-shave]
        return rgb01(img, self.rgb_range).to(self._anchor.device)


class NetworkMetric(FrozenMetric):
    """Base of LPIPS and DISTS: prepares the pair and calls ``distance``.

    Subclasses define ``distance(x, y) -> [B] float32`` for x, y [B, 3, H, W] in [0, 1].
    """

    @torch.no_grad()
    def forward(self, sr, hr, scale, benchmark=True):
        """Per-image scores, float64 [B], of sr against hr ([B, 3, H, W] in [0, rgb_range]).

        ValueError for shapes that differ, non-RGB input, or an image too small to score.
        """
        if sr.dim() == 3:
            sr, hr = sr.unsqueeze(0), hr.unsqueeze(0)
        if sr.dim() != 4 or sr.shape != hr.shape:
            raise ValueError(f'{self.label} expects two [B, 3, H, W] tensors of one shape; got '
                             f'{tuple(sr.shape)} and {tuple(hr.shape)}')
        x, y = self.prepared(sr, scale, benchmark), self.prepared(hr, scale, benchmark)
        with torch.autocast(x.device.type, enabled=False), _no_tf32():
            return self.distance(x, y).double()


@contextlib.contextmanager
def _no_tf32():
    """Full float32 convolutions on CUDA (cuDNN may use TF32 by default, ~1e-3 relative error),
    so that scores do not depend on the GPU generation."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved

