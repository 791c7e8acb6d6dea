"""MDSR (Lim et al., CVPR workshops 2017): one network for x2, x3 and x4.

A shared residual body; per scale, two 5x5 residual blocks before it and a
pixel-shuffle upsampler after it.  ``set_scale(idx)`` picks the branch for
``args.scale[idx]``.  The state_dict layout is EDSR-PyTorch's (baseline: 16 blocks,
64 features, built with ``--scale 2+3+4``).
"""
import torch.nn as nn

import utility
from model import common

SCALES = (2, 3, 4)
MULTI_SCALE = True
INPUT_LARGE = False
# Keys of the scale-dependent upsampler: when training from another scale's weights
# (--pre_train), these may differ from the file and start from scratch.
UPSAMPLER = ('upsample.',)

# EDSR-PyTorch's published weights (trained for --scale 2+3+4), by r<blocks>f<features>.
PRETRAINED_URLS = {
    'r16f64': 'https://cv.snu.ac.kr/research/EDSR/models/mdsr_baseline-a00cab12.pt',
    'r80f64': 'https://cv.snu.ac.kr/research/EDSR/models/mdsr-4a78bedf.pt',
}


def make_model(args):
    return MDSR(scales=args.scale, n_colors=args.n_colors, n_resblocks=args.n_resblocks,
                n_feats=args.n_feats, rgb_range=args.rgb_range)


def pretrained_url(args):
    """URL of the published weights matching ``args`` (UserError when there are none)."""
    key = f'r{args.n_resblocks}f{args.n_feats}'
    if key not in PRETRAINED_URLS or list(args.scale) != [2, 3, 4]:
        raise utility.UserError(
            f'--pre_train download: MDSR weights are published only for --scale 2+3+4 with '
            f'{", ".join(sorted(PRETRAINED_URLS))} (r<n_resblocks>f<n_feats>), not '
            f'{key} at --scale {"+".join(map(str, args.scale))}; or give --pre_train PATH')
    return PRETRAINED_URLS[key]


class MDSR(nn.Module):
    """LR [B, n_colors, h, w] in [0, rgb_range] -> SR [B, n_colors, s*h, s*w], s = scales[idx]."""

    def __init__(self, scales=(2, 3, 4), n_colors=3, n_resblocks=16, n_feats=64,
                 rgb_range=255):
        super().__init__()
        self.scales = list(scales)
        self.scale_idx = 0
        # Registration order gives EDSR-PyTorch's key order.
        self.sub_mean = common.MeanShift(rgb_range, n_colors, sign=-1)
        self.add_mean = common.MeanShift(rgb_range, n_colors, sign=1)
        self.pre_process = nn.ModuleList(
            nn.Sequential(common.ResBlock(n_feats, 5), common.ResBlock(n_feats, 5))
            for _ in self.scales)
        self.upsample = nn.ModuleList(common.Upsampler(s, n_feats) for s in self.scales)
        self.head = nn.Sequential(common.conv(n_colors, n_feats, 3))
        self.body = nn.Sequential(
            *[common.ResBlock(n_feats, 3) for _ in range(n_resblocks)],
            common.conv(n_feats, n_feats, 3))
        self.tail = nn.Sequential(common.conv(n_feats, n_colors, 3))

    def set_scale(self, idx):
        """Use the branch of ``scales[idx]`` from now on."""
        if not 0 <= idx < len(self.scales):
            raise IndexError(f'scale index {idx} out of range for scales {self.scales}')
        self.scale_idx = idx

    def forward(self, x):
        x = self.head(self.sub_mean(x))
        x = self.pre_process[self.scale_idx](x)
        x = x + self.body(x)
        x = self.upsample[self.scale_idx](x)
        return self.add_mean(self.tail(x))
