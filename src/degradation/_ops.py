"""The operations of Real-ESRGAN's degradation model, each a pure function of its inputs.

Definitions (Wang et al., Real-ESRGAN, ICCVW 2021; ranges and conventions as BasicSR's
``basicsr/data/degradations.py``):

* blur kernels on a k x k grid centred on 0 (k odd), normalised to sum 1, with
  ``Q(x) = x^T S^-1 x`` and ``S = R(theta) diag(sx^2, sy^2) R(theta)^T``:
  Gaussian ``exp(-Q/2)``, generalised Gaussian ``exp(-Q^beta / 2)``, plateau
  ``1 / (1 + Q^beta)``; isotropic kernels have sy = sx and theta = 0;
* sinc (circular low-pass) ``wc J1(wc r) / (2 pi r)`` with the limit ``wc^2 / (4 pi)`` at
  r = 0, normalised, zero-padded to a larger size when asked;
* images are float tensors [B, C, H, W] in [0, 1]; ``filter2d`` convolves each sample with
  its own kernel after reflection padding (replicate when the image is too small to
  reflect), ``resize`` is ``F.interpolate`` without antialiasing (area, bilinear or bicubic);
* Gaussian noise: ``N(0, (sigma / 255)^2)`` per pixel, per channel or one gray plane for
  all channels; Poisson noise: the image rounded to 8 bit, ``Poisson(img * v) / v - img``
  with ``v = 2^ceil(log2(#distinct values))``, times ``scale`` (gray: on the BT.601 luma);
* JPEG: real libjpeg through PIL (4:2:0 chroma subsampling, PIL's default), on the image
  rounded to 8 bit;
* unsharp masking (BasicSR's ``USMSharp``): 51 x 51 Gaussian (sigma 8, OpenCV's choice for
  that size; applied as two separable passes), ``sharp = clip(img + 0.5 (img - blur))``
  blended with a blurred mask of ``|img - blur| * 255 > 10``.

Random numbers are never drawn here: the callers pass the drawn values and a
``torch.Generator`` for the noise fields.
"""
import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import special

import imageops

KERNEL_TYPES = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                'plateau_aniso')
RESIZE_MODES = ('area', 'bilinear', 'bicubic')


def mesh_grid(size):
    """float64 [size, size, 2] of (x, y) offsets from the centre pixel (size odd)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f'kernel size must be odd and positive, got {size}')
    ax = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def sigma_matrix(sigma_x, sigma_y, theta):
    """2x2 covariance R(theta) diag(sx^2, sy^2) R(theta)^T."""
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    return rot @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rot.T


def _quadratic(size, sigma_x, sigma_y, theta):
    grid = mesh_grid(size)
    inv = np.linalg.inv(sigma_matrix(sigma_x, sigma_y, theta))
    return np.einsum('hwi,ij,hwj->hw', grid, inv, grid)


def gaussian_kernel(size, sigma_x, sigma_y=None, theta=0.0):
    """float64 [size, size] anisotropic Gaussian (isotropic when sigma_y is None), sum 1."""
    q = _quadratic(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
    k = np.exp(-0.5 * q)
    return k / k.sum()


def generalized_gaussian_kernel(size, sigma_x, sigma_y, theta, beta):
    """float64 [size, size] exp(-Q^beta / 2), sum 1 (beta = 1: Gaussian)."""
    k = np.exp(-0.5 * np.power(_quadratic(size, sigma_x, sigma_y, theta), beta))
    return k / k.sum()


def plateau_kernel(size, sigma_x, sigma_y, theta, beta):
    """float64 [size, size] 1 / (1 + Q^beta), sum 1."""
    k = 1.0 / (np.power(_quadratic(size, sigma_x, sigma_y, theta), beta) + 1.0)
    return k / k.sum()


def sinc_kernel(size, cutoff, pad_to=0):
    """float64 [max(size, pad_to)] ^ 2 circular low-pass of cutoff ``cutoff`` rad, sum 1."""
    grid = mesh_grid(size)
    r = np.hypot(grid[..., 0], grid[..., 1])
    with np.errstate(divide='ignore', invalid='ignore'):
        k = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    k[size // 2, size // 2] = cutoff ** 2 / (4 * np.pi)
    k = k / k.sum()
    return pad_kernel(k, pad_to)


def pad_kernel(kernel, size):
    """Zero-pad a square odd kernel to ``size`` (no change when it is not smaller)."""
    p = (size - kernel.shape[0]) // 2
    return np.pad(kernel, p) if p > 0 else kernel


def make_kernel(params):
    """float64 kernel from a drawn-parameter dict (see ``draw_blur_kernel``)."""
    kind, size = params['type'], params['size']
    if kind == 'sinc':
        return sinc_kernel(size, params['omega_c'])
    sx, sy, theta = params['sigma_x'], params['sigma_y'], params['theta']
    if kind in ('iso', 'aniso'):
        return gaussian_kernel(size, sx, sy, theta)
    if kind.startswith('generalized'):
        return generalized_gaussian_kernel(size, sx, sy, theta, params['beta'])
    if kind.startswith('plateau'):
        return plateau_kernel(size, sx, sy, theta, params['beta'])
    raise ValueError(f'unknown kernel type {kind!r}')


def draw_blur_kernel(rng, sizes, kernel_list, kernel_prob, sinc_prob, sigma, betag, betap):
    """Parameters of one random blur kernel, drawn from numpy Generator ``rng``.

    As Real-ESRGAN's dataset: an odd size from ``sizes``; with probability ``sinc_prob`` a
    sinc with cutoff U(pi/3, pi) (U(pi/5, pi) from size 13); otherwise a kernel type of
    ``kernel_list`` by ``kernel_prob``, sigma_x (and for anisotropic kernels sigma_y) from
    U(sigma), theta U(-pi, pi), beta from U(lo, 1) or U(1, hi) with even odds.
    Returns a JSON-able dict.
    """
    size = int(rng.choice(list(sizes)))
    if rng.random() < sinc_prob:
        lo = np.pi / 3 if size < 13 else np.pi / 5
        return {'type': 'sinc', 'size': size, 'omega_c': float(rng.uniform(lo, np.pi))}
    p = np.asarray(kernel_prob, dtype=np.float64)
    kind = str(kernel_list[int(rng.choice(len(kernel_list), p=p / p.sum()))])
    sx = float(rng.uniform(*sigma))
    if kind.endswith('iso') and not kind.endswith('aniso'):
        sy, theta = sx, 0.0
    else:
        sy, theta = float(rng.uniform(*sigma)), float(rng.uniform(-np.pi, np.pi))
    out = {'type': kind, 'size': size, 'sigma_x': sx, 'sigma_y': sy, 'theta': theta}
    if kind.startswith(('generalized', 'plateau')):
        lo, hi = betag if kind.startswith('generalized') else betap
        out['beta'] = float(rng.uniform(lo, 1.0) if rng.random() < 0.5 else rng.uniform(1.0, hi))
    return out


def filter2d(img, kernels):
    """img [B, C, H, W], kernels [B, k, k] (k odd) -> [B, C, H, W]: per-sample correlation.

    Reflection padding of k // 2 (BasicSR's filter2D); replicate padding when the image
    is too small to reflect.
    """
    b, c, h, w = img.shape
    k = kernels.shape[-1]
    p = k // 2
    mode = 'reflect' if p < h and p < w else 'replicate'
    x = F.pad(img, (p, p, p, p), mode=mode) if p else img
    weight = kernels.to(img.dtype)[:, None].repeat_interleave(c, dim=0)   # [B*C, 1, k, k]
    out = F.conv2d(x.reshape(1, b * c, h + 2 * p, w + 2 * p), weight, groups=b * c)
    return out.reshape(b, c, h, w)


def filter2d_separable(img, kernel_1d):
    """filter2d with the k x k kernel outer(kernel_1d, kernel_1d), as two 1-D passes."""
    b, c, h, w = img.shape
    k = kernel_1d.shape[-1]
    p = k // 2
    mode = 'reflect' if p < h and p < w else 'replicate'
    x = F.pad(img, (p, p, p, p), mode=mode).reshape(1, b * c, h + 2 * p, w + 2 * p)
    kern = kernel_1d.to(img.dtype).reshape(1, 1, 1, k).expand(b * c, 1, 1, k)
    x = F.conv2d(x, kern, groups=b * c)                              # along rows
    x = F.conv2d(x, kern.reshape(b * c, 1, k, 1), groups=b * c)     # along columns
    return x.reshape(b, c, h, w)


def resize(img, size, mode):
    """img [B, C, H, W] -> [B, C, size[0], size[1]] by ``mode`` in RESIZE_MODES."""
    if mode not in RESIZE_MODES:
        raise ValueError(f'unknown resize mode {mode!r}')
    size = (int(size[0]), int(size[1]))
    if tuple(img.shape[-2:]) == size:
        return img
    if mode == 'area':
        return F.interpolate(img, size=size, mode='area')
    return F.interpolate(img, size=size, mode=mode, align_corners=False)


def rgb_to_gray(img):
    """[..., 3, H, W] -> [..., 1, H, W] BT.601 luma (0.299, 0.587, 0.114)."""
    r, g, b = img.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def gaussian_noise(shape, sigma, gray, generator, device, dtype=torch.float32):
    """Noise [C, H, W] of std sigma/255 (``shape`` = (C, H, W)); gray: one plane for all C."""
    c, h, w = shape
    n = torch.randn((1 if gray else c, h, w), generator=generator, device=device, dtype=dtype)
    return (n * (sigma / 255.0)).expand(c, h, w)


def poisson_noise(img, scale, gray, generator):
    """Poisson (shot) noise for one image img [C, H, W] in [0, 1], times ``scale``."""
    c = img.shape[0]
    base = rgb_to_gray(img) if gray and c == 3 else img
    levels = torch.clamp((base * 255.0).round(), 0, 255)
    base = levels / 255.0
    # distinct 8-bit values, counted without sorting (torch.unique sorts)
    distinct = int(torch.count_nonzero(torch.bincount(levels.flatten().long(), minlength=256)))
    vals = 2.0 ** math.ceil(math.log2(max(distinct, 1)))
    out = torch.poisson(base * vals, generator=generator) / vals
    return ((out - base) * scale).expand(c, *img.shape[1:])


def to_uint8_hwc(img):
    """[C, H, W] in [0, 1] -> uint8 numpy [H, W, C], rounded."""
    return imageops.to_uint8(img, 1).permute(1, 2, 0).cpu().numpy()


def jpeg(img, quality):
    """One image [C, H, W] in [0, 1] through libjpeg (PIL) at integer ``quality`` 1..95+."""
    arr = to_uint8_hwc(img)
    pil = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    buffer = io.BytesIO()
    pil.save(buffer, format='JPEG', quality=int(quality))
    buffer.seek(0)
    out = np.asarray(Image.open(buffer).convert('L' if arr.shape[2] == 1 else 'RGB'))
    if out.ndim == 2:
        out = out[..., None]
    t = torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))
    return t.to(device=img.device, dtype=img.dtype) / 255.0


def round8(img):
    """Round [0, 1] values to the 8-bit grid and clamp."""
    return imageops.quantize(img, 1)


def usm_kernel_1d(radius=50):
    """float64 [k] Gaussian of BasicSR's USMSharp (k = radius rounded up to odd; sigma as
    OpenCV's getGaussianKernel gives for sigma 0); its outer product is the 2-D kernel."""
    size = radius + 1 if radius % 2 == 0 else radius
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-ax ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def usm_sharpen(img, weight=0.5, threshold=10, kernel_1d=None):
    """Unsharp masking of img [B, C, H, W] in [0, 1] (BasicSR's USMSharp, radius 50).

    The Gaussian is separable, so it runs as two 1-D passes (same result as the 2-D filter
    up to float rounding, ~25x fewer operations).
    """
    if kernel_1d is None:
        kernel_1d = torch.from_numpy(usm_kernel_1d()).to(img.device, img.dtype)
    blur = filter2d_separable(img, kernel_1d)
    residual = img - blur
    mask = (residual.abs() * 255 > threshold).to(img.dtype)
    soft = filter2d_separable(mask, kernel_1d)
    sharp = torch.clamp(img + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * img
