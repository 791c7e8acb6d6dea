"""SSIM as the SR literature computes it (conventions in ``metric._pixel``; the map is
``ssim.ssim_map`` with the valid window positions).  Higher is better; 1 for identical images."""
from metric._pixel import PerImage, prepare
from ssim import ssim_map

LOWER_IS_BETTER = False
LOG_FORMAT = '.4f'


def ssim_per_image(sr, hr, scale, rgb_range, benchmark=True, crop='edsr', y='rounded'):
    """SSIM of each image of a batch (same conventions as ``psnr_per_image``).

    Returns:
        float64 tensor [B]: mean of the SSIM map (over channels too, for RGB sets).
    """
    sr, hr = prepare(sr, hr, scale, rgb_range, benchmark, crop, y)
    return ssim_map(sr, hr).flatten(1).mean(dim=1)


def calc_ssim(sr, hr, scale, rgb_range, benchmark=True):
    """SSIM (float in [-1, 1]) of sr against hr, [1, C, H, W] in [0, rgb_range].

    For a batch, the mean of the per-image SSIMs.  See ``metric._pixel``.
    """
    return float(ssim_per_image(sr, hr, scale, rgb_range, benchmark).mean())


def make_metric(args):
    return PerImage(ssim_per_image, args)
