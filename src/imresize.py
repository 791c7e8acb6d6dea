"""MATLAB-compatible bicubic ``imresize`` for float tensors, vectorised in torch.

The SR literature makes LR images (and the bicubic baseline) with MATLAB's
``imresize(img, scale, 'bicubic')``; PSNR tables are only comparable when the
same resampling is used.  This reproduces MATLAB's algorithm:

* cubic kernel with a = -0.5 (Keys), support 4 taps;
* antialiasing when shrinking: the kernel is stretched by 1/scale (and scaled
  by ``scale``), so it has ``ceil(4/scale) + 2`` taps;
* output coordinate x (1-based) maps to input ``u = x/scale + 0.5*(1 - 1/scale)``;
  taps ``floor(u - width/2) + 0 .. P-1``; weights normalised to sum 1 per output;
* out-of-range taps are mirrored with edge duplication (MATLAB's 'symmetric',
  ``aux = [1..n, n..1]``, index taken modulo 2n);
* the two dimensions are resized one after the other, the dimension with the
  smaller scale first (MATLAB sorts the scales; ties: height first);
* output size ``ceil(scale * size)`` when a scale is given, and the scale is then
  used as given (not recomputed from the rounded size), as in MATLAB.

No rounding or clamping is done: a caller that wants an 8-bit image as MATLAB makes it
rounds halves away from zero and clamps, e.g.
``imageops.round_half_away(imresize(x, 0.5)).clamp(0, 255)``.
"""
import functools
import math

import numpy as np
import torch


def cubic(x):
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``); numpy in/out."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0)))


@functools.lru_cache(maxsize=64)
def contributions(in_length, out_length, scale, antialiasing=True):
    """MATLAB's ``contributions``: per output sample, the input taps and their weights.

    Args:
        in_length, out_length: sizes (pixels) along the resized dimension.
        scale: out/in scale factor along it (> 0).
        antialiasing: widen the kernel when shrinking (MATLAB's default for bicubic).

    Returns:
        (weights, indices): float64 [out_length, P] and int64 [out_length, P] numpy arrays
        (0-based indices into the input, already mirrored into range; weights of every
        row sum to 1).  Columns that are zero for every output are dropped, as MATLAB does.
    """
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        def kernel(t):
            return scale * cubic(scale * t)
        kernel_width = kernel_width / scale
    else:
        kernel = cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)[:, None]
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left + np.arange(taps, dtype=np.float64)[None, :]      # 1-based, may be out of range
    weights = kernel(u - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric padding with the edge sample repeated: 1..n, n..1, periodic in 2n.
    aux = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = aux[np.mod(indices.astype(np.int64) - 1, aux.size)]
    keep = np.any(weights != 0, axis=0)
    weights, indices = weights[:, keep], indices[:, keep]
    weights.setflags(write=False)
    indices.setflags(write=False)
    return weights, indices


@functools.lru_cache(maxsize=64)
def _contributions_tensors(in_length, out_length, scale, antialiasing, dtype, device):
    w, idx = contributions(in_length, out_length, scale, antialiasing)
    # Columns contiguous: idx[:, k] and w[:, k] are read once per tap.
    return (torch.tensor(w.T.copy(), dtype=dtype, device=device).T,
            torch.tensor(idx.T.copy(), dtype=torch.int64, device=device).T)


def _resize_dim(x, dim, out_length, scale, antialiasing):
    """Resize tensor ``x`` along ``dim`` (-2 or -1) to ``out_length`` samples."""
    w, idx = _contributions_tensors(x.shape[dim], out_length, scale, antialiasing,
                                    x.dtype, x.device)                 # [out, P] each
    shape = (-1, 1) if dim == -2 else (-1,)         # weights broadcast along dim
    # One gather per tap (P <= 4/scale + 3) keeps memory at the output size.
    out = x.index_select(dim, idx[:, 0]) * w[:, 0].reshape(shape)
    for k in range(1, idx.shape[1]):
        out = out + x.index_select(dim, idx[:, k]) * w[:, k].reshape(shape)
    return out


def output_shape(in_size, scale):
    """MATLAB's output size ``ceil(scale * size)`` for a (height, width) pair.

    A tiny tolerance keeps a product that is an integer up to floating-point error from
    rounding up (``1.1 * 50`` is 55.00000000000001, and 55 is meant).
    """
    return tuple(int(math.ceil(scale * n - 1e-9)) for n in in_size)


def imresize(x, scale=None, output_size=None, antialiasing=True):
    """Resize the last two dimensions of ``x`` like MATLAB's ``imresize(x, ..., 'bicubic')``.

    Args:
        x: float tensor [..., H, W] (any leading dims: [H, W], [C, H, W], [B, C, H, W]),
           on any device; any value range (the result is not rounded or clamped).
        scale: scale factor (> 0) for both dimensions, e.g. 0.25 to shrink x4, 2 to enlarge.
        output_size: (out_h, out_w) instead of ``scale``; the per-dimension scales are then
           out/in, as in MATLAB.
        antialiasing: MATLAB's 'Antialiasing' option (default True; only acts when shrinking).

    Returns:
        Tensor [..., out_h, out_w] of x's dtype and device.
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError('imresize expects a floating-point torch tensor [..., H, W]')
    if x.dim() < 2:
        raise ValueError(f'imresize expects [..., H, W], got shape {tuple(x.shape)}')
    if (scale is None) == (output_size is None):
        raise ValueError('imresize: give exactly one of scale or output_size')
    in_size = tuple(x.shape[-2:])
    if scale is not None:
        scale = float(scale)
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f'imresize: scale must be a positive number, got {scale}')
        out_size = output_shape(in_size, scale)
        scales = (scale, scale)
    else:
        out_size = tuple(int(n) for n in output_size)
        if len(out_size) != 2 or min(out_size) < 1:
            raise ValueError(f'imresize: output_size must be two positive ints, got {output_size}')
        scales = (out_size[0] / in_size[0], out_size[1] / in_size[1])
    if min(in_size) < 1:
        raise ValueError(f'imresize: empty input of shape {tuple(x.shape)}')
    # MATLAB resizes along the dimension with the smaller scale first (stable sort).
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    for d in order:
        x = _resize_dim(x, d - 2, out_size[d], scales[d], antialiasing)
    return x
