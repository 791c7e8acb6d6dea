"""EDSR (Lim et al., CVPR workshops 2017): a deep residual network without batch norm.

Baseline: 16 residual blocks, 64 features.  Paper model: 32 blocks, 256 features,
residual scaling 0.1 (``--template EDSR_paper``).  The state_dict layout is
EDSR-PyTorch's, so its published checkpoints load strictly with ``--pre_train PATH``
(or ``--pre_train download``).
"""
import utility
from model import common

SCALES = (2, 3, 4)
MULTI_SCALE = False
INPUT_LARGE = False
# Keys of the scale-dependent upsampler: when training from another scale's weights
# (--pre_train), these may differ from the file and start from scratch.
UPSAMPLER = ('tail.0.',)

# EDSR-PyTorch's published weights, by r<blocks>f<features>x<scale>.
PRETRAINED_URLS = {
    'r16f64x2': 'https://cv.snu.ac.kr/research/EDSR/models/edsr_baseline_x2-1bc95232.pt',
    'r16f64x3': 'https://cv.snu.ac.kr/research/EDSR/models/edsr_baseline_x3-abf2a44e.pt',
    'r16f64x4': 'https://cv.snu.ac.kr/research/EDSR/models/edsr_baseline_x4-6b446fab.pt',
    'r32f256x2': 'https://cv.snu.ac.kr/research/EDSR/models/edsr_x2-0edfb8a3.pt',
    'r32f256x3': 'https://cv.snu.ac.kr/research/EDSR/models/edsr_x3-ea3ef2c6.pt',
    'r32f256x4': 'https://cv.snu.ac.kr/research/EDSR/models/edsr_x4-4f62e9ef.pt',
}


def make_model(args):
    return EDSR(scale=args.scale[0], n_colors=args.n_colors, n_resblocks=args.n_resblocks,
                n_feats=args.n_feats, res_scale=args.res_scale, rgb_range=args.rgb_range)


def pretrained_url(args):
    """URL of the published weights matching ``args`` (UserError when there are none)."""
    key = f'r{args.n_resblocks}f{args.n_feats}x{args.scale[0]}'
    if key not in PRETRAINED_URLS:
        raise utility.UserError(
            f'--pre_train download: EDSR weights are published only for '
            f'{", ".join(sorted(PRETRAINED_URLS))} (r<n_resblocks>f<n_feats>x<scale>), '
            f'not {key}; change --n_resblocks/--n_feats/--scale or give --pre_train PATH')
    return PRETRAINED_URLS[key]


class EDSR(common.ResidualSR):
    """LR [B, n_colors, h, w] in [0, rgb_range] -> SR [B, n_colors, s*h, s*w] (not clamped)."""

    def __init__(self, scale=2, n_colors=3, n_resblocks=16, n_feats=64, res_scale=1.0,
                 rgb_range=255):
        blocks = [common.ResBlock(n_feats, 3, res_scale=res_scale) for _ in range(n_resblocks)]
        super().__init__(blocks, scale, n_colors, n_feats, rgb_range)
