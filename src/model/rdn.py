"""RDN (Zhang et al., CVPR 2018): residual dense blocks with global feature fusion.

``--RDNconfig`` chooses (D blocks, C conv layers per block, G growth channels):
A = (20, 6, 32), B = (16, 8, 64) as in EDSR-PyTorch; ``--G0`` is the feature width
and ``--RDNkSize`` the kernel size.  As in EDSR-PyTorch there is no mean shift: the
network sees the image in [0, rgb_range] directly.
"""
import torch
import torch.nn as nn

SCALES = (2, 3, 4)
MULTI_SCALE = False
INPUT_LARGE = False
# Keys of the scale-dependent upsampler: when training from another scale's weights
# (--pre_train), these may differ from the file and start from scratch.
UPSAMPLER = ('UPNet.',)

CONFIGS = {'A': (20, 6, 32), 'B': (16, 8, 64)}


def make_model(args):
    n_blocks, n_layers, growth = CONFIGS[args.RDNconfig]
    return RDN(scale=args.scale[0], n_colors=args.n_colors, G0=args.G0,
               kernel_size=args.RDNkSize, n_blocks=n_blocks, n_layers=n_layers, growth=growth)


def _conv(in_channels, out_channels, kernel_size):
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)


class DenseLayer(nn.Module):
    """conv + ReLU whose G outputs are concatenated to its input: C -> C + G channels."""

    def __init__(self, in_channels, growth, kernel_size):
        super().__init__()
        self.conv = nn.Sequential(_conv(in_channels, growth, kernel_size), nn.ReLU())

    def forward(self, x):
        return torch.cat((x, self.conv(x)), 1)


class RDB(nn.Module):
    """Residual dense block: C dense layers, 1x1 local feature fusion, local residual.

    [B, G0, H, W] -> [B, G0, H, W].
    """

    def __init__(self, G0, growth, n_layers, kernel_size):
        super().__init__()
        self.convs = nn.Sequential(*[DenseLayer(G0 + c * growth, growth, kernel_size)
                                     for c in range(n_layers)])
        self.LFF = nn.Conv2d(G0 + n_layers * growth, G0, 1)

    def forward(self, x):
        return x + self.LFF(self.convs(x))


class RDN(nn.Module):
    """LR [B, n_colors, h, w] in [0, rgb_range] -> SR [B, n_colors, s*h, s*w] (not clamped)."""

    def __init__(self, scale=2, n_colors=3, G0=64, kernel_size=3, n_blocks=16, n_layers=8,
                 growth=64):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f'RDN supports scales {SCALES}, got {scale}')
        self.SFENet1 = _conv(n_colors, G0, kernel_size)
        self.SFENet2 = _conv(G0, G0, kernel_size)
        self.RDBs = nn.ModuleList(RDB(G0, growth, n_layers, kernel_size)
                                  for _ in range(n_blocks))
        # Global feature fusion over the outputs of every block.
        self.GFF = nn.Sequential(nn.Conv2d(n_blocks * G0, G0, 1), _conv(G0, G0, kernel_size))
        if scale == 4:
            up = [_conv(G0, growth * 4, kernel_size), nn.PixelShuffle(2),
                  _conv(growth, growth * 4, kernel_size), nn.PixelShuffle(2)]
        else:
            up = [_conv(G0, growth * scale * scale, kernel_size), nn.PixelShuffle(scale)]
        self.UPNet = nn.Sequential(*up, _conv(growth, n_colors, kernel_size))

    def forward(self, x):
        shallow = self.SFENet1(x)
        x = self.SFENet2(shallow)
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        x = self.GFF(torch.cat(outs, 1)) + shallow
        return self.UPNet(x)
