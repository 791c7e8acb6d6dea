"""Pixel conventions shared by data, metrics, losses and outputs: the 8-bit grid and BT.601 luma.

* ``quantize``: values are rounded to the 8-bit grid of [0, rgb_range] as an SR output is
  when it is saved; metrics judge that image.
* ``to_uint8``: the same grid as uint8 numbers 0..255 (what PNG files hold).
* ``rgb_to_y``: luminance Y of ITU-R BT.601 as MATLAB's ``rgb2ycbcr`` computes it for 8-bit
  images, ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B in 0..255.
* ``round_half_away``: MATLAB's ``round`` (halves away from zero), which its ``uint8``
  conversions use; ``torch.round`` rounds halves to even.
"""
import torch

BT601_Y = (65.481, 128.553, 24.966)


def round_half_away(x):
    """MATLAB's round: to the nearest integer, halves away from zero (tensor -> tensor)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def quantize(img, rgb_range):
    """Round ``img`` to the 8-bit grid of [0, rgb_range] (clamped), keeping its range.

    Args:
        img: tensor of any shape, values nominally in [0, rgb_range].
        rgb_range: the maximum pixel value (255, or 1 for models working in [0, 1]).
    Returns:
        Tensor of img's shape and dtype with values k * rgb_range / 255, k in 0..255.
    """
    pixel_range = 255 / rgb_range
    return img.mul(pixel_range).clamp(0, 255).round().div(pixel_range)


def to_uint8(img, rgb_range):
    """[..., C, H, W] in [0, rgb_range] -> uint8 tensor 0..255 (the grid of ``quantize``)."""
    return img.detach().float().mul(255 / rgb_range).clamp(0, 255).round().to(torch.uint8)


def rgb_to_y(img255, rounded=True):
    """BT.601 luminance as MATLAB's rgb2ycbcr, in 0..255 units (16..235).

    Args:
        img255: [B, 3, H, W] (or [3, H, W]) with values in 0..255, floating point.
        rounded: round to integers (half away from zero) as rgb2ycbcr does for uint8
            images; False gives its double-precision result.
    Returns:
        [B, 1, H, W] (or [1, H, W]) of the same dtype.
    """
    c = torch.tensor(BT601_Y, dtype=img255.dtype, device=img255.device).view(3, 1, 1)
    y = 16.0 + (img255 * c).sum(dim=-3, keepdim=True) / 255.0
    return torch.floor(y + 0.5) if rounded else y
