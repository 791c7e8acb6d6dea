"""RCAN (Zhang et al., ECCV 2018): residual-in-residual groups of channel-attention blocks.

Paper configuration: 10 residual groups of 20 blocks, 64 features, channel-attention
reduction 16 (``--template RCAN``).  The state_dict layout is EDSR-PyTorch's (and the
RCAN authors'), so their RCAN_BIX<s>.pt checkpoints load strictly with --pre_train PATH.
"""
import torch.nn as nn

import utility
from model import common

SCALES = (2, 3, 4, 8)
MULTI_SCALE = False
INPUT_LARGE = False
# Keys of the scale-dependent upsampler: when training from another scale's weights
# (--pre_train), these may differ from the file and start from scratch.
UPSAMPLER = ('tail.0.',)


def make_model(args):
    # --res_scale is not read, as in EDSR-PyTorch (its RCAN builds every RCAB with
    # res_scale=1, and the published weights were trained so).
    return RCAN(scale=args.scale[0], n_colors=args.n_colors, n_resgroups=args.n_resgroups,
                n_resblocks=args.n_resblocks, n_feats=args.n_feats,
                reduction=args.reduction, res_scale=1.0, rgb_range=args.rgb_range)


def pretrained_url(args):
    """RCAN's weights have no direct URL: always a UserError saying where to get them."""
    raise utility.UserError(
        '--pre_train download: RCAN\'s weights (RCAN_BIX2.pt ... RCAN_BIX8.pt) are published '
        'on the authors\' page github.com/yulunzhang/RCAN, not at a direct URL; download one '
        'and give --pre_train PATH')


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: global average pool, 1x1 down/up convs, sigmoid gate.

    [B, C, H, W] -> [B, C, H, W] (the input rescaled per channel).
    """

    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class RCAB(common.ResBlock):
    """Residual channel-attention block: conv - ReLU - conv - attention, plus the input."""

    def __init__(self, n_feats, reduction, res_scale=1.0):
        super().__init__(n_feats, 3, res_scale=res_scale)
        self.body.append(ChannelAttention(n_feats, reduction))


class ResidualGroup(nn.Module):
    """``n_resblocks`` RCABs and a conv, with a skip over the whole group."""

    def __init__(self, n_feats, reduction, n_resblocks, res_scale=1.0):
        super().__init__()
        self.body = nn.Sequential(
            *[RCAB(n_feats, reduction, res_scale) for _ in range(n_resblocks)],
            common.conv(n_feats, n_feats, 3))

    def forward(self, x):
        return x + self.body(x)


class RCAN(common.ResidualSR):
    """LR [B, n_colors, h, w] in [0, rgb_range] -> SR [B, n_colors, s*h, s*w] (not clamped)."""

    def __init__(self, scale=2, n_colors=3, n_resgroups=10, n_resblocks=20, n_feats=64,
                 reduction=16, res_scale=1.0, rgb_range=255):
        groups = [ResidualGroup(n_feats, reduction, n_resblocks, res_scale)
                  for _ in range(n_resgroups)]
        super().__init__(groups, scale, n_colors, n_feats, rgb_range)
