"""LPIPS with the VGG16 trunk and its v0.1 heads: ``lpips.LPIPS(net='vgg', version='0.1')``.
Lower is better (0 for identical images).

Files: vgg16-397923af.pth (torch hub's checkpoints folder) and lpips' v0.1 vgg.pth.
"""
from metric import _lpips

LOWER_IS_BETTER = True
RGB_ONLY = True
LOG_FORMAT = '.4f'


def make_metric(args):
    return _lpips.LPIPS('vgg16', args.rgb_range, args.metric_weights, label='LPIPS_VGG',
                        crop=getattr(args, 'crop_border', 'edsr'))
