"""LPIPS, AlexNet trunk with the v0.1 heads: ``lpips.LPIPS(net='alex', version='0.1')``, the
SSL paper's perceptual distance.  Lower is better (0 for identical images).

Files: alexnet-owt-7be5be79.pth (torch hub's checkpoints folder) and lpips' v0.1 alex.pth.
"""
from metric import _lpips

LOWER_IS_BETTER = True
RGB_ONLY = True
LOG_FORMAT = '.4f'


def make_metric(args):
    return _lpips.LPIPS('alexnet', args.rgb_range, args.metric_weights, label='LPIPS',
                        crop=getattr(args, 'crop_border', 'edsr'))
