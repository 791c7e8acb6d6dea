"""bsrgan: BSRGAN's shuffled degradation (Zhang et al., ICCV 2021), as the SSL paper trains with it.

Source: ChrisDud0257/SSL ``GAN-Based-SR/train_BSGRAN/utils/utils_blindsr.py``
``degradation_bsrgan`` (= KAIR ``utils/utils_blindsr.py``; no camera ISP: ``isp_model=None``)
and ``utils_image.py`` ``imresize_np``.  ``GENERATE`` holds the ranges of the official test-set
script (``utils_parameter_blindsr.py`` ``degradation_bsrgan_nocrop`` with
``options/generate/generate_RealESRGAN+BSRGAN_LR.yml``), which ``mix`` uses.

For one HR image [C, H, W] in [0, 1] (H, W multiples of the scale s):

1. x4 only, with probability 0.25: halve the image (even odds: an OpenCV-style resize with a
   random interpolation, or MATLAB bicubic with antialiasing) and continue with s = 2;
2. seven operations in a random order (a uniform permutation; when downsample3 comes before
   downsample2 the two swap places, so downsample3 stays after it):
   0, 1. blur: with probability 0.3 an anisotropic Gaussian (covariance eigenvalues
         l1, l2 ~ U(0, 0.2 + 0.2 s), eigenvector angle U(0, pi)), else an isotropic one
         (MATLAB ``fspecial('gaussian')``, sigma ~ U(0, 0.2 + 0.2 s)); size 2 U{0..3} + 3;
         convolution with mirror boundaries (scipy ``ndimage`` 'mirror');
   2. downsample2: with probability 0.75 a resize by 1 / U(1, 1/0.85) with a random
      interpolation; else the shifted-kernel nearest downsample: a Gaussian (size
      2 U{0..3} + 3, sigma U(0.1, 0.25 s)) resampled bilinearly at offsets (s - 1) / 2
      (scipy's removed ``interp2d``, here ``shift_kernel``), renormalised, convolved, then
      every s-th pixel;
   3. downsample3: resize to 1/s of the size downsample2 started from, random interpolation;
   4. Gaussian noise, level U{1..12} / 255: colour (p 0.4), gray (p 0.4) or channel-correlated
      (p 0.2; covariance |L^2 U^T D U| elementwise with L = 12/255, D = diag(U(0,1)^3),
      U = orth(U(0,1)^{3x3}), sampled as numpy's ``multivariate_normal`` does: by SVD);
   5. JPEG with probability 0.9, quality U{75..95};
   6. the camera ISP: absent (``isp_model=None``), a no-op kept in the order;
3. a final JPEG, quality U{75..95}.

Every resize and noise step is clipped to [0, 1], as the official code does.  The random
interpolation is one of OpenCV's ``INTER_LINEAR``, ``INTER_CUBIC``, ``INTER_AREA``
(``resize_cv2``: torch bilinear/bicubic without antialiasing are OpenCV's linear and
cubic; area is OpenCV's ``INTER_AREA`` table, written here).  JPEG is libjpeg through PIL,
as for ``realesrgan`` (OpenCV is not a dependency; both are libjpeg with 4:2:0 chroma).

Randomness: the official code draws from Python's and numpy's global generators; here every
value comes from the sample's key (numpy ``default_rng`` for parameters, a torch generator
for the noise fields), so only the distribution can match the official one, not the samples
(``bench/bsrgan_distribution.py`` compares them).  Every sample draws its own order, so a
training batch is degraded sample by sample.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

import imresize as _imresize
from degradation import _ops
from degradation._second_order import key_rng, key_torch_generator

SOURCE = 'ChrisDud0257/SSL GAN-Based-SR/train_BSGRAN/utils/utils_blindsr.py degradation_bsrgan'

INTERPOLATIONS = ('linear', 'cubic', 'area')     # OpenCV's INTER_LINEAR, INTER_CUBIC, INTER_AREA
_PARAMS, _NOISE = 0, 1

# utils_blindsr.py: add_blur (sizes 2 randint(0, 3) + 3), downsample2 (1 / U(1, 1/0.85)),
# add_Gaussian_noise(noise_level1=1, noise_level2=12), add_JPEG_noise (randint(75, 95)).
PARAMS = {
    'scale2_prob': 0.25, 'jpeg_prob': 0.9, 'aniso_prob': 0.3, 'resize2_prob': 0.75,
    'kernel_range': (0, 3),                  # kernel size 2 k + 3
    'downsample2': ('inverse', (1.0, 1 / 0.85)),    # size * 1 / U(lo, hi)
    'noise_range': (1, 12),
    'jpeg_range': (75, 95),
    'blur_sf': None,                         # blur widths from the current s (2 after halving)
}

# utils_parameter_blindsr.py with generate_RealESRGAN+BSRGAN_LR.yml's BSRGAN block:
# add_blur_kernel_range [0, 4], downsample2_resize_range [0.75, 1.0] (size * U(lo, hi)),
# add_gaussian_noise_range [1, 10], add_jpeg_noise_range [85, 95]; its add_blur reads the
# scale from that block (sf: 4), so the blur widths stay those of s = 4 after the halving.
GENERATE = dict(PARAMS, kernel_range=(0, 4), downsample2=('direct', (0.75, 1.0)),
                noise_range=(1, 10), jpeg_range=(85, 95), blur_sf=4)


# ----------------------------------------------------------------------------- kernels
def fspecial_gaussian(size, sigma):
    """float64 [size, size] MATLAB ``fspecial('gaussian', size, sigma)``: exp(-r^2 / 2 sigma^2)
    with values below eps * max set to 0, normalised to sum 1."""
    r = (size - 1) / 2.0
    ax = np.arange(-r, r + 1)
    x, y = np.meshgrid(ax, ax)
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    h[h < np.finfo(float).eps * h.max()] = 0
    s = h.sum()
    return h / s if s != 0 else h


def anisotropic_gaussian(size, theta, l1, l2):
    """float64 [size, size] Gaussian of covariance with eigenvalues l1 (along angle theta) and
    l2 (across it), sampled on the centred grid, sum 1 (KAIR's ``anisotropic_Gaussian``)."""
    return _ops.gaussian_kernel(size, math.sqrt(l1), math.sqrt(l2), theta)


def bilinear_on_grid(z, xs, ys):
    """Linear interpolation of z [ny, nx] (samples at integer x = 0..nx-1, y = 0..ny-1) at
    the points (xs[j], ys[i]) inside the grid -> [len(ys), len(xs)].

    scipy's removed ``interp2d(arange(nx), arange(ny), z, kind='linear')(xs, ys)``: a
    degree-1 spline through the samples of a regular grid is the bilinear interpolant.
    """
    z = np.asarray(z, dtype=np.float64)
    ny, nx = z.shape

    def taps(p, n):
        p = np.asarray(p, dtype=np.float64)
        i0 = np.clip(np.floor(p).astype(np.int64), 0, max(n - 2, 0))
        i1 = np.minimum(i0 + 1, n - 1)
        return i0, i1, p - i0

    x0, x1, fx = taps(xs, nx)
    y0, y1, fy = taps(ys, ny)
    fx, fy = fx[None, :], fy[:, None]
    return ((1 - fy) * ((1 - fx) * z[np.ix_(y0, x0)] + fx * z[np.ix_(y0, x1)])
            + fy * ((1 - fx) * z[np.ix_(y1, x0)] + fx * z[np.ix_(y1, x1)]))


def shift_kernel(k, sf):
    """KAIR's ``shift_pixel(k, sf)`` of a kernel [h, w]: resampled at (i, j) + (sf - 1) / 2,
    clipped to the grid (the kernel moves towards the upper left).  Not renormalised."""
    h, w = k.shape
    shift = (sf - 1) * 0.5
    xs = np.clip(np.arange(w, dtype=np.float64) + shift, 0, w - 1)
    ys = np.clip(np.arange(h, dtype=np.float64) + shift, 0, h - 1)
    return bilinear_on_grid(k, xs, ys)


# ----------------------------------------------------------------------------- image ops
def mirror_index(n, pad):
    """Indices of 0..n-1 extended by ``pad`` on each side with scipy's 'mirror' rule
    (d c b | a b c d | c b a, repeated for pads longer than the image)."""
    i = np.arange(-pad, n + pad)
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    i = np.mod(i, period)
    return np.where(i >= n, period - i, i)


def convolve_mirror(img, kernel):
    """img [B, C, H, W], kernel [k, k] (k odd) -> [B, C, H, W]: scipy ``ndimage.convolve``
    with mode 'mirror' (a true convolution: the kernel is flipped), every channel alike."""
    k = kernel.shape[-1]
    p = k // 2
    _, c, h, w = img.shape
    rows = torch.from_numpy(mirror_index(h, p)).to(img.device)
    cols = torch.from_numpy(mirror_index(w, p)).to(img.device)
    x = img.index_select(2, rows).index_select(3, cols)
    weight = torch.as_tensor(np.ascontiguousarray(np.asarray(kernel)[::-1, ::-1]))
    weight = weight.to(img.device, img.dtype).expand(c, 1, k, k)
    return F.conv2d(x, weight, groups=c)


def area_table(in_size, out_size):
    """OpenCV's INTER_AREA weights for shrinking in_size -> out_size samples:
    (index [out, T], weight [out, T]) with the overlaps of each output cell, unused taps 0."""
    scale = in_size / out_size
    rows = []
    for d in range(out_size):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, in_size - f1)
        s2 = min(math.floor(f2), in_size - 1)
        s1 = min(math.ceil(f1), s2)
        taps = []
        if s1 - f1 > 1e-3:
            taps.append((s1 - 1, (s1 - f1) / cell))
        taps += [(s, 1.0 / cell) for s in range(s1, s2)]
        if f2 - s2 > 1e-3:
            taps.append((s2, min(min(f2 - s2, 1.0), cell) / cell))
        rows.append(taps)
    t = max(len(r) for r in rows)
    idx = np.zeros((out_size, t), dtype=np.int64)
    wt = np.zeros((out_size, t), dtype=np.float32)       # OpenCV keeps float weights
    for d, taps in enumerate(rows):
        for j, (s, a) in enumerate(taps):
            idx[d, j], wt[d, j] = s, a
    return idx, wt


def _area_dim(x, dim, out_size):
    n = x.shape[dim]
    if out_size == n:
        return x
    if out_size > n:
        raise ValueError(f'INTER_AREA is only used to shrink here ({n} -> {out_size})')
    idx, wt = area_table(n, out_size)
    shape = (-1, 1) if dim == -2 else (-1,)
    idx = torch.from_numpy(idx).to(x.device)
    wt = torch.from_numpy(wt).to(x.device, x.dtype)
    out = x.index_select(dim, idx[:, 0]) * wt[:, 0].reshape(shape)
    for j in range(1, idx.shape[1]):     # fixed order: the same sums for any thread count
        out = out + x.index_select(dim, idx[:, j]) * wt[:, j].reshape(shape)
    return out


def resize_cv2(img, size, interpolation):
    """img [B, C, H, W] -> [B, C, size[0], size[1]] as ``cv2.resize`` with INTER_LINEAR,
    INTER_CUBIC (half-pixel centres, a = -0.75, replicated borders, no antialiasing) or
    INTER_AREA (shrinking only)."""
    size = (int(size[0]), int(size[1]))
    if tuple(img.shape[-2:]) == size:
        return img
    if interpolation == 'area':
        return _area_dim(_area_dim(img, -2, size[0]), -1, size[1])
    mode = {'linear': 'bilinear', 'cubic': 'bicubic'}[interpolation]
    return F.interpolate(img, size=size, mode=mode, align_corners=False)


def correlated_noise_matrix(cov):
    """A [3, 3] with z @ A ~ N(0, cov) for z ~ N(0, I), as numpy's ``multivariate_normal``
    (SVD: A = sqrt(s)[:, None] * vh; for a cov that is not positive semi-definite this gives
    the covariance V |Lambda| V^T, as numpy does)."""
    _, s, vh = np.linalg.svd(np.asarray(cov, dtype=np.float64))
    return np.sqrt(s)[:, None] * vh


def gaussian_noise(img, noise, generator):
    """img [1, C, H, W] + the drawn noise (see ``draw``), clipped to [0, 1]."""
    _, c, h, w = img.shape
    sigma = noise['level'] / 255.0
    if noise['mode'] == 'color':
        n = torch.randn((1, c, h, w), generator=generator, device=img.device) * sigma
    elif noise['mode'] == 'gray':
        n = torch.randn((1, 1, h, w), generator=generator, device=img.device) * sigma
    else:
        a = torch.as_tensor(correlated_noise_matrix(noise['cov']), dtype=img.dtype,
                            device=img.device)
        z = torch.randn((3, h, w), generator=generator, device=img.device)
        # z @ A per pixel, summed in a fixed order (no BLAS: the same for any thread count)
        n = (z[0, None] * a[0, :, None, None] + z[1, None] * a[1, :, None, None]
             + z[2, None] * a[2, :, None, None])[None]
    return torch.clamp(img + n.to(img.dtype), 0, 1)


# ----------------------------------------------------------------------------- draws
def _draw_interp(rng):
    return INTERPOLATIONS[int(rng.integers(0, 3))]


def _draw_blur(rng, p, sf):
    wd = 0.2 + 0.2 * (p['blur_sf'] or sf)
    size = 2 * int(rng.integers(p['kernel_range'][0], p['kernel_range'][1] + 1)) + 3
    if rng.random() < p['aniso_prob']:
        return {'type': 'aniso', 'size': size, 'l1': float(wd * rng.random()),
                'l2': float(wd * rng.random()), 'theta': float(rng.random() * np.pi)}
    return {'type': 'iso', 'size': size, 'sigma': float(wd * rng.random())}


def _draw_noise(rng, p):
    lo, hi = p['noise_range']
    out = {'level': int(rng.integers(lo, hi + 1))}
    r = rng.random()
    if r > 0.6:
        out['mode'] = 'color'
    elif r < 0.4:
        out['mode'] = 'gray'
    else:
        big = hi / 255.0
        d = np.diag(rng.random(3))
        u = linalg.orth(rng.random((3, 3)))
        out['mode'] = 'correlated'
        out['cov'] = np.abs(big ** 2 * (u.T @ d @ u)).tolist()
    return out


def _draw_quality(rng, p):
    return int(rng.integers(p['jpeg_range'][0], p['jpeg_range'][1] + 1))


def draw(rng, params, scale, height, width):
    """Parameters of one sample (a JSON-able dict) for an HR of height x width."""
    p = params
    sf = scale
    out = {'downsample1': None}
    h, w = height, width
    if scale == 4 and rng.random() < p['scale2_prob']:
        if rng.random() < 0.5:
            out['downsample1'] = {'method': 'cv2', 'interp': _draw_interp(rng)}
        else:
            out['downsample1'] = {'method': 'matlab_bicubic'}
        h, w, sf = h // 2, w // 2, 2
    out['sf'] = sf
    order = [int(i) for i in rng.permutation(7)]
    i2, i3 = order.index(2), order.index(3)
    if i2 > i3:                                  # downsample3 stays after downsample2
        order[i2], order[i3] = order[i3], order[i2]
    out['order'] = order
    ops = {}
    for i in order:
        if i in (0, 1):
            ops[f'blur{i + 1}'] = _draw_blur(rng, p, sf)
        elif i == 2:
            if rng.random() < p['resize2_prob']:
                form, (lo, hi) = p['downsample2']
                f = float(rng.uniform(lo, hi))
                factor = 1 / f if form == 'inverse' else f
                ops['downsample2'] = {'type': 'resize', 'factor': factor,
                                      'size': [int(factor * h), int(factor * w)],
                                      'interp': _draw_interp(rng)}
            else:
                size = 2 * int(rng.integers(p['kernel_range'][0], p['kernel_range'][1] + 1)) + 3
                ops['downsample2'] = {'type': 'shifted', 'size': size,
                                      'sigma': float(rng.uniform(0.1, 0.25 * sf))}
        elif i == 3:
            ops['downsample3'] = {'size': [h // sf, w // sf], 'interp': _draw_interp(rng)}
        elif i == 4:
            ops['noise'] = _draw_noise(rng, p)
        elif i == 5:
            ops['jpeg'] = _draw_quality(rng, p) if rng.random() < p['jpeg_prob'] else None
    out.update(ops)
    out['jpeg_final'] = _draw_quality(rng, p)
    return out


def shifted_kernel(size, sigma, sf):
    """The downsample2 kernel: fspecial Gaussian, shifted by (sf - 1) / 2, sum 1."""
    k = shift_kernel(fspecial_gaussian(size, sigma), sf)
    return k / k.sum()


def blur_kernel(d):
    if d['type'] == 'aniso':
        return anisotropic_gaussian(d['size'], d['theta'], d['l1'], d['l2'])
    return fspecial_gaussian(d['size'], d['sigma'])


def apply(hr, sample, generator):
    """hr [1, C, H, W] in [0, 1] -> lr [1, C, H/s, W/s] on the 8-bit grid for the drawn
    ``sample`` (see ``draw``); ``generator`` draws the noise field."""
    img = hr
    d1 = sample['downsample1']
    if d1 is not None:
        h, w = img.shape[-2] // 2, img.shape[-1] // 2
        if d1['method'] == 'cv2':
            img = resize_cv2(img, (h, w), d1['interp'])
        else:
            img = _imresize.imresize(img, 0.5)
        img = torch.clamp(img, 0, 1)
    sf = sample['sf']
    for i in sample['order']:
        if i in (0, 1):
            img = convolve_mirror(img, blur_kernel(sample[f'blur{i + 1}']))
        elif i == 2:
            d = sample['downsample2']
            if d['type'] == 'resize':
                img = resize_cv2(img, d['size'], d['interp'])
            else:
                img = convolve_mirror(img, shifted_kernel(d['size'], d['sigma'], sf))
                img = img[..., ::sf, ::sf]
            img = torch.clamp(img, 0, 1)
        elif i == 3:
            d = sample['downsample3']
            img = torch.clamp(resize_cv2(img, d['size'], d['interp']), 0, 1)
        elif i == 4:
            img = gaussian_noise(img, sample['noise'], generator)
        elif i == 5 and sample['jpeg'] is not None:
            img = _ops.jpeg(img[0], sample['jpeg'])[None]
    return _ops.jpeg(img[0], sample['jpeg_final'])[None]


class BSRGAN:
    """The pipeline for one scale: ``(lr, params) = deg(hr, batch_key, sample_keys)`` for
    hr [B, C, H, W] in [0, 1] (H, W multiples of the scale), lr [B, C, H/s, W/s] on the 8-bit
    grid.  Each sample draws everything from its own key; ``batch_key`` is not used."""

    def __init__(self, params, scale):
        self.p = params
        self.scale = int(scale)

    def draw(self, batch_key, sample_keys, height, width):
        return [draw(key_rng(k, _PARAMS), self.p, self.scale, height, width)
                for k in sample_keys]

    def __call__(self, hr, batch_key, sample_keys):
        b, _, h, w = hr.shape
        if len(sample_keys) != b:
            raise ValueError(f'{len(sample_keys)} sample keys for a batch of {b}')
        s = self.scale
        if h % s or w % s:
            raise ValueError(f'HR size {h}x{w} is not a multiple of the scale {s}')
        params = self.draw(batch_key, sample_keys, h, w)
        out = []
        with torch.no_grad():
            for i, (k, sp) in enumerate(zip(sample_keys, params)):
                g = key_torch_generator(k, _NOISE, hr.device)
                out.append(apply(hr[i:i + 1], sp, g))
        return torch.cat(out), params


def describe(sample):
    """Short lines of one sample's drawn parameters (for the preview)."""
    names = {0: 'blur', 1: 'blur', 2: 'ds2', 3: 'ds3', 4: 'noise', 5: 'jpeg', 6: 'isp'}
    d1 = sample['downsample1']
    head = ('x1/2 ' + (d1['interp'] if d1['method'] == 'cv2' else 'matlab') if d1 else 'no x1/2')
    lines = [f'{head}; ' + ' '.join(names[i] for i in sample['order'] if i != 6)]

    def blur(d):
        if d['type'] == 'aniso':
            return f'aniso{d["size"]} l={d["l1"]:.2f}/{d["l2"]:.2f}'
        return f'iso{d["size"]} s={d["sigma"]:.2f}'
    lines.append(f'{blur(sample["blur1"])}, {blur(sample["blur2"])}')
    d2 = sample['downsample2']
    lines.append(f'ds2 x{d2["factor"]:.2f} {d2["interp"]}' if d2['type'] == 'resize'
                 else f'ds2 shifted{d2["size"]} s={d2["sigma"]:.2f}')
    n = sample['noise']
    lines.append(f'noise {n["mode"]} {n["level"]}, ds3 {sample["downsample3"]["interp"]}')
    q = sample['jpeg']
    lines.append(f'jpeg {"q" + str(q) if q else "none"}, final q{sample["jpeg_final"]}')
    return lines


def make_degradation(scale):
    return BSRGAN(PARAMS, scale)
