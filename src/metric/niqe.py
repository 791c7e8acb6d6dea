"""NIQE (Mittal, Soundararajan, Bovik 2013, "Making a completely blind image quality
analyzer") as BasicSR's ``calculate_niqe(img, crop_border, convert_to='y')``, the SSL
paper's script.  No reference: only the SR image is scored.  Lower is better.

The SR output on the 8-bit grid; its luminance as BasicSR computes it (float32:
``((rgb / 255) . (65.481, 128.553, 24.966) + 16) / 255 * 255``), the border cropped
(``--crop_border``), rounded half to even (numpy's ``round``).  Then, on the largest
multiple of 96 pixels per side (top left), at two scales (the image, then MATLAB's bicubic
``imresize(0.5)`` with antialiasing, float32): MSCN coefficients with the 7x7 Gaussian window
of the pristine model (``scipy.ndimage.convolve``, 'nearest' edges; sigma = sqrt|E[x^2] -
mu^2|, (x - mu) / (sigma + 1)), and per 96x96 block (48x48 at the second scale, no
overlap) 18 features: the AGGD fit of the block (shape alpha on the grid 0.2:0.001:10,
mean of the two scales) and, for the products with the block rolled by (0, 1), (1, 0),
(1, 1), (1, -1), alpha, the AGGD mean, and the left and right scales.  The 36-feature
blocks give a mean (NaN features ignored) and a covariance (blocks with a NaN dropped);
NIQE = sqrt((mu_p - mu)^T pinv((C_p + C) / 2) (mu_p - mu)) with the pristine mu_p, C_p.

File: niqe_pris_params.npz (mu_pris_param [1, 36], cov_pris_param [36, 36],
gaussian_window [7, 7]), read from ``--metric_weights`` or an installed basicsr package.
"""
import math

import numpy as np
import torch
from scipy.ndimage import convolve
from scipy.special import gamma

import imageops
import utility
from imresize import imresize
from metric import _pixel, _weights

LOWER_IS_BETTER = True
NO_REFERENCE = True
LOG_FORMAT = '.4f'

BLOCK = 96
_LAYOUT = {'mu_pris_param': (1, 36), 'cov_pris_param': (36, 36), 'gaussian_window': (7, 7)}
# The AGGD shape grid and the ratio r(alpha) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) on it.
_ALPHAS = np.arange(0.2, 10.001, 0.001)
_RATIO = gamma(2 / _ALPHAS) ** 2 / (gamma(1 / _ALPHAS) * gamma(3 / _ALPHAS))
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def load_pristine(path):
    """{'mu_pris_param', 'cov_pris_param', 'gaussian_window'} float64 arrays of the npz
    file; UserError (one line) for an unreadable file or another layout."""
    try:
        with np.load(path, allow_pickle=False) as data:
            params = {k: np.asarray(data[k], dtype=np.float64) for k in data.files}
    except Exception as e:  # numpy raises many types for a damaged archive
        raise utility.UserError(f'{path} cannot be read as an .npz archive ({type(e).__name__});'
                                f' NIQE needs the published niqe_pris_params.npz') from None
    for key, shape in _LAYOUT.items():
        if key not in params or params[key].shape != shape or not np.isfinite(params[key]).all():
            raise utility.UserError(f'{path} lacks {key} of shape {shape} (or it is not finite); '
                                    f'NIQE needs the published niqe_pris_params.npz')
    return params


def y_basicsr(rgb_u8):
    """uint8 [3, H, W] RGB -> float32 [H, W] luminance as BasicSR's ``to_y_channel`` of the
    image read as float32 (before its rounding)."""
    x = rgb_u8.astype(np.float32) / np.float32(255)
    w = np.array(imageops.BT601_Y, dtype=np.float64)
    y = np.tensordot(w, x, axes=([0], [0])) + 16.0           # float64, as numpy promotes
    return (y / 255.0).astype(np.float32) * np.float32(255)


def aggd(block):
    """AGGD fit of the values of ``block`` (any shape): (alpha, left scale, right scale); NaN
    scales (and alpha 0.2) when it has no negative or no positive values.

    The means are numpy means of the block's dtype over the selected values, as BasicSR
    takes them: on float32 blocks a sum in another order moves alpha by a grid step now and
    then (about 4e-4 in NIQE on Set5's baby).
    """
    x = block.ravel()
    left = np.sqrt(np.mean(np.square(x[x < 0]))) if (x < 0).any() else np.nan
    right = np.sqrt(np.mean(np.square(x[x > 0]))) if (x > 0).any() else np.nan
    ratio = left / right
    rhat = np.mean(np.abs(x)) ** 2 / np.mean(np.square(x))
    rnorm = rhat * (ratio ** 3 + 1) * (ratio + 1) / (ratio ** 2 + 1) ** 2
    # argmin over NaNs gives the first position, as in the reference.
    alpha = _ALPHAS[np.argmin((_RATIO - rnorm) ** 2)]
    factor = math.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * factor, right * factor


def block_features(block):
    """The 18 NIQE features of one MSCN block [h, w]."""
    alpha, bl, br = aggd(block)
    feats = [alpha, (bl + br) / 2]
    for shift in _SHIFTS:
        alpha, bl, br = aggd(block * np.roll(block, shift, axis=(0, 1)))
        feats += [alpha, (br - bl) * gamma(2 / alpha) / gamma(1 / alpha), bl, br]
    return feats


def _mscn_blocks(img, window, side):
    """MSCN coefficients of float image ``img`` [H, W] (its dtype kept, as scipy does) cut
    into non-overlapping side x side blocks, [N, side, side]."""
    mu = convolve(img, window, mode='nearest')
    sigma = np.sqrt(np.abs(convolve(np.square(img), window, mode='nearest') - np.square(mu)))
    norm = (img - mu) / (sigma + 1)
    h, w = norm.shape[0] // side, norm.shape[1] // side
    return norm[:h * side, :w * side].reshape(h, side, w, side).swapaxes(1, 2).reshape(
        -1, side, side)


def niqe_of_y(img, params):
    """NIQE of a rounded luminance image, float [H, W] in 0..255 (at least 96x96)."""
    h, w = img.shape
    if h < BLOCK or w < BLOCK:
        raise ValueError(f'image {h}x{w} is too small for NIQE (at least {BLOCK} pixels per '
                         f'side after cropping)')
    img = img[:h // BLOCK * BLOCK, :w // BLOCK * BLOCK]
    window = params['gaussian_window']
    feats = [[block_features(b) for b in _mscn_blocks(img, window, BLOCK)]]
    # MATLAB's bicubic imresize(0.5) with antialiasing, float32 as BasicSR runs it.
    half = imresize(torch.from_numpy(np.ascontiguousarray(img / 255.0, dtype=np.float32)),
                    scale=0.5).numpy() * np.float32(255)
    feats.append([block_features(b) for b in _mscn_blocks(half, window, BLOCK // 2)])
    feats = np.concatenate([np.array(f, dtype=np.float64) for f in feats], axis=1)
    mu = np.nanmean(feats, axis=0)
    cov = np.cov(feats[~np.isnan(feats).any(axis=1)], rowvar=False)
    diff = params['mu_pris_param'][0] - mu
    inv = np.linalg.pinv((params['cov_pris_param'] + cov) / 2)
    return float(math.sqrt(diff @ inv @ diff))


class NIQE:
    """forward(sr, hr, scale, benchmark) -> float64 [B]: NIQE of each SR image (hr unused)."""

    label = 'NIQE'

    def __init__(self, rgb_range, weights_dir='', crop='edsr'):
        self.rgb_range, self.crop = rgb_range, crop
        self.head_file = _weights.head_path('niqe', weights_dir, 'NIQE')
        self.params = load_pristine(self.head_file)

    def luminance(self, img):
        """[C, H, W] in [0, rgb_range] -> float32 [H, W] luminance before rounding."""
        u8 = imageops.to_uint8(img, self.rgb_range).cpu().numpy()
        return y_basicsr(u8) if u8.shape[0] == 3 else u8[0].astype(np.float32)

    def __call__(self, sr, hr=None, scale=4, benchmark=True):
        if sr.dim() == 3:
            sr = sr.unsqueeze(0)
        shave = _pixel.border(scale, benchmark, self.crop)
        out = []
        with np.errstate(invalid='ignore', divide='ignore'):
            for img in sr:
                y = self.luminance(img)
                if shave:
                    y = y[shave:-shave, shave:-shave]
                out.append(niqe_of_y(np.round(y), self.params))
        return torch.tensor(out, dtype=torch.float64)


def make_metric(args):
    return NIQE(args.rgb_range, args.metric_weights, getattr(args, 'crop_border', 'edsr'))
