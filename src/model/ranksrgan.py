"""RankSRGAN's generator (Zhang et al., ICCV 2019): SRResNet without batch norm.

A 3x3 conv, ``--n_resblocks`` (16) residual blocks of conv-ReLU-conv, a 3x3 conv with a
skip over the trunk, pixel-shuffle x2 stages (one x3 stage at scale 3) each followed by a
ReLU, then conv-ReLU-conv to colours.  The network works on [0, 1] images, as the released
mmsr files (``mmsr_SRResNet_pretrain.pth``, plain state_dicts) expect.

Parameter names follow the SSL repository's ``RankSRGANSRResNet``
(basicsr/archs/ranksrgan_arch.py): ``conv_first``, ``recon_trunk.N.conv1/conv2``,
``LRconv``, ``upconv1`` (``upconv2`` at x4), ``HRconv``, ``conv_last``.

forward: LR [B, n_colors, h, w] in [0, rgb_range] -> SR [B, n_colors, s*h, s*w] (not
clamped).
"""
import torch.nn as nn
import torch.nn.functional as F

SCALES = (2, 3, 4)
# Keys of the scale-dependent upsampler (a file of another scale starts these afresh).
UPSAMPLER = ('upconv1.', 'upconv2.')


def make_model(args):
    return RankSRGANSRResNet(scale=args.scale[0], n_colors=args.n_colors,
                             n_feats=args.n_feats, n_resblocks=args.n_resblocks,
                             rgb_range=args.rgb_range)


def _init(convs, gain=0.1):
    """Kaiming-normal weights times ``gain``, zero biases: the residual trunk starts near the
    identity (the released training's initialisation)."""
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight, a=0, mode='fan_in')
        conv.weight.data.mul_(gain)
        nn.init.zeros_(conv.bias)


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(x))), no batch norm."""

    def __init__(self, n_feats):
        super().__init__()
        self.conv1 = nn.Conv2d(n_feats, n_feats, 3, 1, 1)
        self.conv2 = nn.Conv2d(n_feats, n_feats, 3, 1, 1)
        _init([self.conv1, self.conv2])

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class RankSRGANSRResNet(nn.Module):
    """See the module docstring."""

    def __init__(self, scale=4, n_colors=3, n_feats=64, n_resblocks=16, rgb_range=255):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f'RankSRGANSRResNet supports scales {SCALES}, got {scale}')
        self.rgb_range = float(rgb_range)
        self.factors = [3] if scale == 3 else [2] * (scale.bit_length() - 1)
        self.conv_first = nn.Conv2d(n_colors, n_feats, 3, 1, 1)
        self.recon_trunk = nn.Sequential(*[ResidualBlock(n_feats) for _ in range(n_resblocks)])
        self.LRconv = nn.Conv2d(n_feats, n_feats, 3, 1, 1)
        for i, r in enumerate(self.factors, 1):
            setattr(self, f'upconv{i}', nn.Conv2d(n_feats, n_feats * r * r, 3, 1, 1))
        self.HRconv = nn.Conv2d(n_feats, n_feats, 3, 1, 1)
        self.conv_last = nn.Conv2d(n_feats, n_colors, 3, 1, 1)
        _init([self.conv_first, self.HRconv, self.conv_last]
              + [getattr(self, f'upconv{i}') for i in range(1, len(self.factors) + 1)])

    def forward(self, x):
        feat = self.conv_first(x / self.rgb_range)
        out = self.LRconv(self.recon_trunk(feat)) + feat
        for i, r in enumerate(self.factors, 1):
            out = F.relu(F.pixel_shuffle(getattr(self, f'upconv{i}')(out), r))
        return self.conv_last(F.relu(self.HRconv(out))) * self.rgb_range
