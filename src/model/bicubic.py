"""Bicubic: MATLAB-compatible bicubic upsampling, the baseline row of every SR table.

No parameters (the trainer has nothing to optimise and must skip training for it).
One "network" serves every integer scale; ``set_scale(idx)`` picks ``args.scale[idx]``.
"""
import torch.nn as nn

from imresize import imresize

SCALES = None
MULTI_SCALE = True
INPUT_LARGE = False


def make_model(args):
    return Bicubic(scales=args.scale)


class Bicubic(nn.Module):
    """LR [B, C, h, w] (any range) -> [B, C, s*h, s*w], MATLAB imresize, not rounded."""

    def __init__(self, scales=(2,)):
        super().__init__()
        self.scales = list(scales)
        self.scale_idx = 0

    def set_scale(self, idx):
        if not 0 <= idx < len(self.scales):
            raise IndexError(f'scale index {idx} out of range for scales {self.scales}')
        self.scale_idx = idx

    def forward(self, x):
        return imresize(x, scale=self.scales[self.scale_idx])
