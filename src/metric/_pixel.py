"""What PSNR and SSIM share: the SR literature's preparation of an image pair.

Conventions (those behind the published benchmark tables):

* The SR output is quantised to 8 bit first (``imageops.quantize``): a model is judged on the
  image it would save.
* Benchmarks (``benchmark=True``): luminance Y of ITU-R BT.601 as MATLAB's
  ``rgb2ycbcr`` on 8-bit images, i.e. ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``
  for R, G, B in 0..255, rounded to an integer as MATLAB does for uint8 input; a border
  of ``scale`` pixels is shaved.  The rounding is what the classic evaluation code
  (``rgb2ycbcr`` on the uint8 images) did for the published bicubic rows: with it the
  bundled Set5 gives 33.65/30.39/28.42 dB against the published 33.66/30.39/28.42;
  without it (BasicSR's and EDSR-PyTorch's float Y) about +0.01..0.03 dB more.
* Other sets (``benchmark=False``, e.g. DIV2K validation): EDSR-PyTorch's convention,
  all RGB channels and a border of ``scale + 6`` pixels shaved.  SSIM there is the mean
  of the per-channel SSIMs.
* A one-channel image (``--n_colors 1``) is taken as Y already.
* PSNR = 10 log10(255^2 / MSE), in dB (inf for identical images).
* SSIM (Wang et al. 2004): 11x11 Gaussian window with sigma 1.5, statistics over the
  valid region only (no padding), K = (0.01, 0.03), L = 255, population (biased)
  variances; the mean of the SSIM map.  This equals scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=255)``, whose mean already leaves out the padded border.

Arithmetic is float64 so that results do not depend on the device.

Protocol switches (``--y_channel``, ``--crop_border``, see ``protocol``): ``y='float'`` keeps
rgb2ycbcr's unrounded Y (BasicSR and the SSL paper); ``crop='scale'`` shaves ``scale`` pixels
on every set, an integer that many.
"""
from imageops import quantize, rgb_to_y


def border(scale, benchmark, crop='edsr'):
    """Pixels shaved from each side before scoring; every metric uses it.

    crop: 'edsr' (default): ``scale`` on benchmark sets, ``scale + 6`` elsewhere
    (EDSR-PyTorch's convention); 'scale': ``scale`` everywhere (BasicSR's ``crop_border``
    as the SSL paper sets it); an int: that many pixels.
    """
    if crop == 'edsr':
        return scale if benchmark else scale + 6
    if crop == 'scale':
        return scale
    return int(crop)


def prepare(sr, hr, scale, rgb_range, benchmark, crop='edsr', y='rounded'):
    """Quantise, scale to 0..255 (float64), choose channels and shave the border
    (``crop``: see ``border``; ``y``: 'rounded' or 'float' luminance on benchmark sets).

    Returns two [B, C', H', W'] float64 tensors (C' = 1 for benchmark Y).
    """
    if sr.dim() == 3:
        sr, hr = sr.unsqueeze(0), hr.unsqueeze(0)
    if sr.dim() != 4 or sr.shape != hr.shape:
        raise ValueError(f'metrics expect two [B, C, H, W] tensors of the same shape; got '
                         f'{tuple(sr.shape)} and {tuple(hr.shape)}')
    to255 = 255.0 / rgb_range
    sr = quantize(sr.detach().double(), rgb_range) * to255
    hr = quantize(hr.detach().double(), rgb_range) * to255
    shave = border(scale, benchmark, crop)
    if benchmark and sr.shape[1] == 3:
        rounded = y == 'rounded'
        sr, hr = rgb_to_y(sr, rounded), rgb_to_y(hr, rounded)
    if shave > 0:
        if min(sr.shape[-2:]) <= 2 * shave:
            raise ValueError(f'image {tuple(sr.shape[-2:])} is too small to shave {shave} pixels')
        sr = sr[..., shave:-shave, shave:-shave]
        hr = hr[..., shave:-shave, shave:-shave]
    return sr, hr


class PerImage:
    """The metric object of PSNR or SSIM: ``fn(sr, hr, scale, rgb_range, benchmark, crop, y)``,
    a float64 [B] per-image function, bound to ``args``' rgb_range and protocol switches."""

    def __init__(self, fn, args):
        self.fn, self.rgb_range = fn, args.rgb_range
        self.crop = getattr(args, 'crop_border', 'edsr')
        self.y = getattr(args, 'y_channel', 'rounded')

    def __call__(self, sr, hr, scale, benchmark=True):
        """float64 [B] of sr against hr, [B, C, H, W] in [0, rgb_range]."""
        return self.fn(sr, hr, scale, self.rgb_range, benchmark, self.crop, self.y)
