"""VDSR (Kim et al., CVPR 2016): a plain stack of 3x3 convs learning the residual of the
bicubic-upsampled image.

``--n_resblocks`` is the number of conv layers (20 in the paper, ``--template VDSR``).
The input is the LR image already upsampled to the HR size (``INPUT_LARGE``: the
wrapper does it with MATLAB-compatible bicubic), so one network serves every scale.
Layout as in EDSR-PyTorch: ``body.N.0`` convs without bias, ReLU between them.

Initialisation: He (Kaiming normal, fan-in) for every conv but the last, as in the VDSR paper,
and zeros for the last, so the network starts as the identity (the bicubic input).  PyTorch's
default init shrinks the signal about 2.5x per layer: after 20 layers the residual is below 1e-6
of the input, gradients vanish, and training stays at the bicubic PSNR.
"""
import torch.nn as nn

import utility
from model import common

SCALES = None
MULTI_SCALE = True
INPUT_LARGE = True


def make_model(args):
    if args.n_resblocks < 2:
        raise utility.UserError(f'VDSR needs --n_resblocks >= 2 (conv layers), '
                                f'got {args.n_resblocks}')
    return VDSR(n_colors=args.n_colors, n_layers=args.n_resblocks, n_feats=args.n_feats,
                rgb_range=args.rgb_range)


class VDSR(nn.Module):
    """Upsampled LR [B, n_colors, H, W] in [0, rgb_range] -> SR [B, n_colors, H, W]."""

    def __init__(self, n_colors=3, n_layers=20, n_feats=64, rgb_range=255):
        super().__init__()
        self.sub_mean = common.MeanShift(rgb_range, n_colors, sign=-1)
        self.add_mean = common.MeanShift(rgb_range, n_colors, sign=1)
        widths = [n_colors] + [n_feats] * (n_layers - 1) + [n_colors]
        layers = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == n_layers - 1
            block = [common.conv(c_in, c_out, 3, bias=False)]
            if not last:
                block.append(nn.ReLU(inplace=True))
            layers.append(nn.Sequential(*block))
        self.body = nn.Sequential(*layers)
        convs = [block[0] for block in layers]
        for conv in convs[:-1]:
            nn.init.kaiming_normal_(conv.weight, mode='fan_in', nonlinearity='relu')
        nn.init.zeros_(convs[-1].weight)

    def set_scale(self, idx):
        """Nothing to switch: the input is already at the output size."""

    def forward(self, x):
        x = self.sub_mean(x)
        return self.add_mean(x + self.body(x))
