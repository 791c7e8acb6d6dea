"""SRResNet (Ledig et al., CVPR 2017): the generator of SRGAN trained for PSNR.

9x9 conv + PReLU; ``--n_resblocks`` (16) residual blocks of conv-BN-PReLU-conv-BN;
conv-BN and a skip over the trunk; per x2 stage conv(n -> 4n) + PixelShuffle(2) +
PReLU; a 9x9 conv to colours.  The network works on mean-centred images divided by
``rgb_range`` (about [-0.45, 0.6]), whatever ``rgb_range`` is, because its batch norms fix
the feature scale.
"""
import torch.nn as nn

from model import common

SCALES = (2, 4)
MULTI_SCALE = False
INPUT_LARGE = False
# Keys of the scale-dependent upsampler: when training from another scale's weights
# (--pre_train), these may differ from the file and start from scratch.
UPSAMPLER = ('tail.0.',)


def make_model(args):
    return SRResNet(scale=args.scale[0], n_colors=args.n_colors, n_resblocks=args.n_resblocks,
                    n_feats=args.n_feats, rgb_range=args.rgb_range)


class SRResNet(nn.Module):
    """LR [B, n_colors, h, w] in [0, rgb_range] -> SR [B, n_colors, s*h, s*w] (not clamped)."""

    def __init__(self, scale=4, n_colors=3, n_resblocks=16, n_feats=64, rgb_range=255):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f'SRResNet supports scales {SCALES}, got {scale}')
        self.rgb_range = float(rgb_range)
        self.sub_mean = common.MeanShift(rgb_range, n_colors, sign=-1)
        self.add_mean = common.MeanShift(rgb_range, n_colors, sign=1)
        self.head = nn.Sequential(common.conv(n_colors, n_feats, 9), nn.PReLU())
        self.body = nn.Sequential(
            *[common.ResBlock(n_feats, 3, act=nn.PReLU, bn=True) for _ in range(n_resblocks)],
            common.conv(n_feats, n_feats, 3), nn.BatchNorm2d(n_feats))
        self.tail = nn.Sequential(common.Upsampler(scale, n_feats, act=nn.PReLU),
                                  common.conv(n_feats, n_colors, 9))

    def forward(self, x):
        x = self.head(self.sub_mean(x) / self.rgb_range)
        x = x + self.body(x)
        return self.add_mean(self.tail(x) * self.rgb_range)
