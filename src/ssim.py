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

    The 2-D Gaussian is separable, so a row pass then a column pass gives the 2-D result
    with 2 * size instead of size^2 taps. float32 and half: each pass a depthwise
    convolution (groups = C), in x's memory format; on CPU several times faster on
    channels-last data (oneDNN's depthwise kernels), for which ``ssim_map`` lays out its
    statistics. float64 (the metrics): each pass a sum of size shifted slices, the
    convolution's sum in the same order (bitwise its result on the machine measured), 2-5x
    faster than torch's float64 depthwise convolution, which runs one slow_conv2d per
    channel.
    """
    taps = gaussian_taps(size, float(sigma), x.dtype, x.device)
    if x.dtype == torch.float64:
        weights = taps.tolist()
        for dim in (-1, -2):
            n = x.shape[dim] - size + 1
            out = x.narrow(dim, 0, n) * weights[0]
            for k in range(1, size):
                out = out.add_(x.narrow(dim, k, n), alpha=weights[k])
            x = out
        return x
    channels = x.shape[1]
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
    batch, channels = x.shape[:2]
    # Variances as E[x^2] - E[x]^2 cancel badly in float32 on bright, flat 0..255 data.
    # They do not change when the image (with its zero padding) is shifted by a constant, so
    # shift each channel by its mean first (the padding then holds -shift): several times
    # more accurate at the cost of one subtraction.
    shift = x.mean(dim=(2, 3)).reshape(-1, 1, 1)                  # [B*C, 1, 1]
    if padding == 'same':
        pad = size // 2
        x = F.pad(x, (pad, pad, pad, pad))
        y = F.pad(y, (pad, pad, pad, pad))
    n = batch * channels
    rows, cols = x.shape[-2:]
    # The five statistics x, y, x^2, y^2, xy of the n = B*C planes go through one filter as
    # stats [5, n, rows, cols], each statistic a dense block for the arithmetic below.
    # float32 and half in channels-last memory: oneDNN's depthwise kernels took 4-8x as long
    # on the same data in NCHW order. float64 (the metrics) in NCHW order, which the
    # shifted sums of gaussian_filter read along rows.
    layout = torch.contiguous_format if x.dtype == torch.float64 else torch.channels_last
    planes_x, planes_y = x.reshape(n, rows, cols), y.reshape(n, rows, cols)
    if torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):
        xs, ys = planes_x - shift, planes_y - shift
        stats = torch.stack((xs, ys, xs * xs, ys * ys, xs * ys)).contiguous(
            memory_format=layout)
    else:   # the same values written in place (out= has no gradient)
        stats = torch.empty((5, n, rows, cols), dtype=x.dtype, device=x.device,
                            memory_format=layout)
        xs, ys = stats[0], stats[1]
        torch.sub(planes_x, shift, out=xs)
        torch.sub(planes_y, shift, out=ys)
        torch.mul(xs, xs, out=stats[2])
        torch.mul(ys, ys, out=stats[3])
        torch.mul(xs, ys, out=stats[4])
    stats = gaussian_filter(stats, size, sigma)
    mu_x, mu_y, xx, yy, xy = stats.unbind(0)     # shifted means; each [n, rows', cols']
    # In place on fresh intermediates only: five temporaries fewer, and autograd still
    # follows (the gradcheck test holds the map to its numerical gradient).
    cov2 = torch.addcmul(xy, mu_x, mu_y, value=-1).mul_(2).add_(c2)          # 2 cov + C2
    var2 = torch.add(xx, yy).addcmul_(mu_x, mu_x, value=-1).addcmul_(mu_y, mu_y, value=-1)
    var2.add_(c2)                                                          # var_x + var_y + C2
    mu_x, mu_y = mu_x + shift, mu_y + shift
    num = torch.mul(mu_x, mu_y).mul_(2).add_(c1).mul_(cov2)
    den = torch.mul(mu_x, mu_x).addcmul_(mu_y, mu_y).add_(c1).mul_(var2)
    out = num.div_(den)
    return out.reshape(batch, channels, *out.shape[-2:])
