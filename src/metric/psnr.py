"""PSNR in dB as the SR literature computes it (see metrics.py).  Higher is better."""
import metrics

LOWER_IS_BETTER = False
LOG_FORMAT = '.2f'


class PSNR:
    def __init__(self, rgb_range):
        self.rgb_range = rgb_range

    def __call__(self, sr, hr, scale, benchmark=True):
        """float64 [B] of sr against hr, [B, C, H, W] in [0, rgb_range]."""
        return metrics.psnr_per_image(sr, hr, scale, self.rgb_range, benchmark)


def make_metric(args):
    return PSNR(args.rgb_range)
