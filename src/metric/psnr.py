"""PSNR in dB as the SR literature computes it (conventions in ``metric._pixel``).
Higher is better; inf for identical images.  Float64, so results do not depend on the device."""
import torch

from metric._pixel import PerImage, prepare

LOWER_IS_BETTER = False
LOG_FORMAT = '.2f'


def psnr_per_image(sr, hr, scale, rgb_range, benchmark=True, crop='edsr', y='rounded'):
    """PSNR in dB of each image of a batch.

    Args:
        sr, hr: [B, C, H, W] (or [C, H, W]) in [0, rgb_range]; sr is quantised here.
        scale: SR scale (border to shave, see ``metric._pixel``).
        rgb_range: maximum pixel value of sr and hr.
        benchmark: Y channel and shave ``scale`` (True) or RGB and shave ``scale + 6``.
        crop, y: protocol switches (``--crop_border``, ``--y_channel``; see ``metric._pixel``).
    Returns:
        float64 tensor [B] (inf where the images are equal).
    """
    sr, hr = prepare(sr, hr, scale, rgb_range, benchmark, crop, y)
    mse = (sr - hr).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(255.0 ** 2 / mse)


def calc_psnr(sr, hr, scale, rgb_range, benchmark=True):
    """PSNR in dB (float) of sr against hr, [1, C, H, W] in [0, rgb_range].

    For a batch, the mean of the per-image PSNRs.  See ``metric._pixel``.
    """
    return float(psnr_per_image(sr, hr, scale, rgb_range, benchmark).mean())


def make_metric(args):
    return PerImage(psnr_per_image, args)
