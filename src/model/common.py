"""Building blocks shared by the models (the EDSR family, and SwinIR's upsampler and padding).

The module and parameter names (``body.N``, ``tail.0.0`` ...) are chosen so that the
state_dict layout of EDSR-PyTorch is reproduced exactly: its published checkpoints
load strictly.  Every block maps [B, C, H, W] float tensors to float tensors.
"""
import math

import torch
import torch.nn as nn

# Mean RGB of DIV2K's training images as fractions of the value range (EDSR-PyTorch's
# constant); multiplied by rgb_range inside MeanShift.
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def mirror_pad(x, bottom, right):
    """x [..., h, w] extended by ``bottom`` rows and ``right`` columns of its mirror image.

    Row ``h + i`` is row ``h - 1 - i`` (the edge row is repeated: symmetric padding), as
    SwinIR's test script builds it with ``torch.cat([x, x.flip(-2)], -2)[..., :h + bottom, :]``;
    a pad longer than the image keeps alternating the image and its mirror.
    """
    for dim, pad in ((-2, bottom), (-1, right)):
        if pad > 0:
            n = x.shape[dim]
            pieces, length = [x], n
            while length < n + pad:
                pieces.append(pieces[-1].flip(dim))
                length += n
            x = torch.cat(pieces, dim).narrow(dim, 0, n + pad)
    return x


def conv(in_channels, out_channels, kernel_size, bias=True):
    """A 'same'-padded convolution (odd kernel): [B, in, H, W] -> [B, out, H, W]."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                     bias=bias)


class MeanShift(nn.Conv2d):
    """Adds (sign=+1) or subtracts (sign=-1) the DIV2K mean times ``rgb_range``.

    A 1x1 convolution with an identity weight and a fixed bias, frozen
    (``requires_grad`` False).  It is a conv rather than a buffer because EDSR-PyTorch
    stores ``sub_mean.weight`` / ``sub_mean.bias`` in its checkpoints.  With one colour
    channel the mean of the three RGB means is used.
    """

    def __init__(self, rgb_range, n_colors=3, sign=-1, mean=DIV2K_RGB_MEAN):
        super().__init__(n_colors, n_colors, kernel_size=1)
        if n_colors != len(mean):
            mean = (sum(mean) / len(mean),) * n_colors
        with torch.no_grad():
            self.weight.copy_(torch.eye(n_colors).view(n_colors, n_colors, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(mean, dtype=torch.float32))
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)


class ResBlock(nn.Module):
    """conv - [BN] - act - conv - [BN], scaled by ``res_scale`` and added to the input.

    ``act`` is a zero-argument factory (``nn.ReLU``, ``nn.PReLU``) so that blocks never
    share an activation that has parameters.  [B, n_feats, H, W] -> same shape.
    """

    def __init__(self, n_feats, kernel_size=3, act=nn.ReLU, res_scale=1.0, bn=False,
                 bias=True):
        super().__init__()
        layers = []
        for i in range(2):
            layers.append(conv(n_feats, n_feats, kernel_size, bias=bias))
            if bn:
                layers.append(nn.BatchNorm2d(n_feats))
            if i == 0:
                layers.append(act())
        self.body = nn.Sequential(*layers)
        self.res_scale = res_scale

    def forward(self, x):
        res = self.body(x)
        if self.res_scale != 1:
            res = res * self.res_scale
        return x + res


def upsampler_supports(scale):
    """True when :class:`Upsampler` can build ``scale`` (a power of two, or 3)."""
    return scale == 3 or (scale >= 2 and scale & (scale - 1) == 0)


class Upsampler(nn.Sequential):
    """Sub-pixel (pixel-shuffle) upsampling by ``scale``: [B, n, h, w] -> [B, n, s*h, s*w].

    Powers of two use log2(scale) stages of conv(n -> 4n) + PixelShuffle(2); scale 3
    uses conv(n -> 9n) + PixelShuffle(3).  ``act`` (a factory or None) follows each stage.
    """

    def __init__(self, scale, n_feats, act=None, bias=True):
        if not upsampler_supports(scale):
            raise ValueError(f'pixel-shuffle upsampling supports x3 and powers of two, '
                             f'not x{scale}')
        stages = [3] if scale == 3 else [2] * int(round(math.log2(scale)))
        layers = []
        for r in stages:
            layers.append(conv(n_feats, r * r * n_feats, 3, bias=bias))
            layers.append(nn.PixelShuffle(r))
            if act is not None:
                layers.append(act())
        super().__init__(*layers)


class ResidualSR(nn.Module):
    """The EDSR/RCAN frame: mean shift, head conv, residual body, upsampler, tail conv.

    ``blocks`` (modules [B, n_feats, h, w] -> same) form the body, followed by a conv,
    with a skip over the whole body.  forward: LR [B, n_colors, h, w] in [0, rgb_range]
    -> SR [B, n_colors, s*h, s*w] (not clamped).  Keys: sub_mean, add_mean, head.0,
    body.N, tail.0 (upsampler), tail.1 -- EDSR-PyTorch's layout.
    """

    def __init__(self, blocks, scale=2, n_colors=3, n_feats=64, rgb_range=255):
        super().__init__()
        self.sub_mean = MeanShift(rgb_range, n_colors, sign=-1)
        self.add_mean = MeanShift(rgb_range, n_colors, sign=1)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        self.body = nn.Sequential(*blocks, conv(n_feats, n_feats, 3))
        self.tail = nn.Sequential(Upsampler(scale, n_feats), conv(n_feats, n_colors, 3))

    def forward(self, x):
        x = self.head(self.sub_mean(x))
        x = x + self.body(x)
        return self.add_mean(self.tail(x))
