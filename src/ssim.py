"""SSIM maps with an 11x11 Gaussian window (sigma 1.5): one implementation for two uses.

* ``padding='valid'`` (metrics.py): the SR literature's SSIM, window positions inside the
  image only, as MATLAB's ssim and skimage's structural_similarity with gaussian weights.
* ``padding='same'`` (SPL, loss/spl.py): the map PSPL weights its pixels by, with zero
  padding so the output has the input's size; pixels outside the image count as 0 (the
  window is not renormalised at the border).

The constants follow the data range: C1 = (0.01 L)^2, C2 = (0.03 L)^2.
"""
import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=16)
def gaussian_taps(size=11, sigma=1.5, dtype=torch.float32, device='cpu'):
    """1-D Gaussian taps [size] centred on size // 2, summing to 1 (cached per dtype/device)."""
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    taps = torch.exp(-offsets ** 2 / (2.0 * sigma ** 2))
    return (taps / taps.sum()).to(dtype=dtype, device=device)


def gaussian_filter(x, size=11, sigma=1.5):
    """Gaussian-weighted window means of each channel of x [B, C, H, W], 'valid' positions
    only: [B, C, H - size + 1, W - size + 1].

    The 2-D Gaussian is separable, so a row pass then a column pass (each a depthwise
    convolution, groups = C) gives the 2-D result with 2 * size instead of size^2 taps.
    """
    channels = x.shape[1]
    taps = gaussian_taps(size, float(sigma), x.dtype, x.device)
    x = F.conv2d(x, taps.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    return F.conv2d(x, taps.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)


def ssim_map(x, y, data_range=255.0, size=11, sigma=1.5, k1=0.01, k2=0.03, padding='valid'):
    """SSIM of x and y at every window position and channel.

    x, y: [B, C, H, W] float tensors with values in [0, data_range]; each channel on its own.
    data_range: L, the largest pixel value (255 for 8-bit data, 1 for [0, 1] data).
    padding: 'valid' -> [B, C, H - size + 1, W - size + 1] (needs H, W >= size);
             'same' -> [B, C, H, W] with zero padding.
    Values in [-1, 1]; 1 where the local windows agree exactly.  Computed in the input dtype;
    differentiable (callers that only need a weight should call it under torch.no_grad()).
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f'ssim_map needs two [B, C, H, W] tensors of one shape, got '
                         f'{tuple(x.shape)} and {tuple(y.shape)}')
    if padding not in ('valid', 'same'):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    h, w = x.shape[-2:]
    if padding == 'valid' and min(h, w) < size:
        raise ValueError(f'SSIM needs images of at least {size}x{size}, got {h}x{w}')
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    channels = x.shape[1]
    # Variances as E[x^2] - E[x]^2 cancel badly in float32 on bright, flat 0..255 data.
    # They do not change when the image (with its zero padding) is shifted by a constant, so
    # shift each channel by its mean first (the padding then holds -shift): several times
    # more accurate at the cost of one subtraction.
    shift = x.mean(dim=(2, 3), keepdim=True)
    if padding == 'same':
        pad = size // 2
        x = F.pad(x, (pad, pad, pad, pad))
        y = F.pad(y, (pad, pad, pad, pad))
    x, y = x - shift, y - shift
    # One filter call for all five statistics: fewer kernel launches, one pass over memory.
    stats = gaussian_filter(torch.cat((x, y, x * x, y * y, x * y), dim=1), size, sigma)
    mu_x, mu_y, xx, yy, xy = stats.split(channels, dim=1)
    var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    mu_x, mu_y = mu_x + shift, mu_y + shift
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
