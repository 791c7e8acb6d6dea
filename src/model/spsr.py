"""SPSR: structure-preserving super-resolution with gradient guidance (Ma et al., CVPR 2020).

Two branches.  The SR branch is ESRGAN's RRDB trunk (``--n_rrdb`` blocks) with
nearest-neighbour upsampling; the gradient branch starts from the gradient map of the LR
image (gradient.py), takes the SR trunk's features after blocks 5, 10, 15 and 20 (with
fewer than 20 blocks: after each quarter of the trunk, for small test networks) through
four RRDBs of twice the width, upsamples, and predicts the gradient map of the SR image
(``conv_w``).  A fusion RRDB over both branches' HR features gives the SR image.

forward, LR [B, 3, h, w] in [0, rgb_range]: in evaluation the SR image [B, 3, s*h, s*w];
in training the dict ``{'sr': SR image, 'grad_branch': the gradient branch's map of the SR
image, 'grad_lr': the gradient map of the LR image}``, all in [0, rgb_range] units (the
network itself works on [0, 1] images, as the released files expect).  Evaluation uses the
fused SR image, the second output of the official network, as its test does.

Parameter names follow the SSL repository's ``SPSRNet`` (basicsr/archs/spsr_arch.py,
BasicSR ``{'params'}`` files): ``model.0`` (first conv), ``model.1.sub.N`` (RRDBs, the last
index the trunk conv), upsampling convs at ``model.3``, ``model.6`` (x4), ``model.8`` = also
``HR_conv0_new.0`` (one module under two names, as there), ``b_*`` (gradient branch),
``f_*`` (fusion), ``get_g_nopadding.weight_h/_v`` (the fixed difference kernels).
"""
import torch
import torch.nn as nn

from gradient import GradientMap

SCALES = (2, 3, 4)
# Outputs besides the SR image that loss terms may ask for (the step protocol).
AUX_OUTPUTS = ('grad_branch', 'grad_lr')
# The gradient branch reads the trunk after these many blocks (official, 20 blocks or more).
TAPS = (5, 10, 15, 20)


def make_model(args):
    return SPSRNet(scale=args.scale[0], n_colors=args.n_colors, n_feats=args.n_feats,
                   n_rrdb=args.n_rrdb, growth=args.rrdb_growth, rgb_range=args.rgb_range)


def _conv(cin, cout, k=3, act=False):
    """A conv (and LeakyReLU(0.2)) as a Sequential: the official conv_block's key layout."""
    layers = [nn.Conv2d(cin, cout, k, 1, k // 2)]
    if act:
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class _DenseBlock(nn.Module):
    """ESRGAN's residual dense block: five convs, each seeing the input and every earlier
    output; the last output scaled by 0.2 and added to the input."""

    def __init__(self, nc, gc):
        super().__init__()
        for i in range(1, 5):
            setattr(self, f'conv{i}', _conv(nc + (i - 1) * gc, gc, act=True))
        self.conv5 = _conv(nc + 4 * gc, nc)

    def forward(self, x):
        feats = [x]
        for i in range(1, 5):
            feats.append(getattr(self, f'conv{i}')(torch.cat(feats, 1)))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class _RRDB(nn.Module):
    def __init__(self, nc, gc):
        super().__init__()
        self.RDB1, self.RDB2, self.RDB3 = (_DenseBlock(nc, gc) for _ in range(3))

    def forward(self, x):
        return x + 0.2 * self.RDB3(self.RDB2(self.RDB1(x)))


class _Holder(nn.Module):
    """Holds the trunk under ``sub`` (the official ShortcutBlock's key); SPSRNet runs it."""

    def __init__(self, sub):
        super().__init__()
        self.sub = sub


def _upsampling(scale, nf):
    """Nearest-neighbour x2 stages (one x3 stage for scale 3), each conv + LeakyReLU."""
    layers = []
    for factor in ([3] if scale == 3 else [2] * (scale.bit_length() - 1)):
        layers += [nn.Upsample(scale_factor=factor, mode='nearest'),
                   nn.Conv2d(nf, nf, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)]
    return layers


class SPSRNet(nn.Module):
    """SPSR generator (see the module docstring); returns a dict in training."""

    def __init__(self, scale=4, n_colors=3, n_feats=64, n_rrdb=23, growth=32, rgb_range=255):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f'SPSRNet supports scales {SCALES}, got {scale}')
        nf, gc = n_feats, growth
        self.rgb_range = float(rgb_range)
        self.n_rrdb = n_rrdb
        # Smaller trunks (test networks) are read at quarters instead (0 = before block 1).
        self.taps = TAPS if n_rrdb >= TAPS[-1] else tuple(k * n_rrdb // 4 for k in (1, 2, 3, 4))
        # SR branch.  The first HR conv is registered under both names, as officially.
        self.HR_conv0_new = _conv(nf, nf, act=True)
        self.HR_conv1_new = _conv(nf, nf)
        trunk = nn.Sequential(*[_RRDB(nf, gc) for _ in range(n_rrdb)], nn.Conv2d(nf, nf, 3, 1, 1))
        self.model = nn.Sequential(nn.Conv2d(n_colors, nf, 3, 1, 1), _Holder(trunk),
                                   *_upsampling(scale, nf), *self.HR_conv0_new)
        self.get_g_nopadding = GradientMap(1.0)
        # Gradient branch.
        self.b_fea_conv = _conv(n_colors, nf)
        for i in range(1, 5):
            setattr(self, f'b_concat_{i}', _conv(2 * nf, nf))
            setattr(self, f'b_block_{i}', _RRDB(2 * nf, gc))
        self.b_LR_conv = _conv(nf, nf)
        self.b_module = nn.Sequential(*_upsampling(scale, nf), *_conv(nf, nf, act=True),
                                      *_conv(nf, nf))
        self.conv_w = _conv(nf, n_colors, k=1)
        # Fusion.
        self.f_concat = _conv(2 * nf, nf)
        self.f_block = _RRDB(2 * nf, gc)
        self.f_HR_conv0 = _conv(nf, nf, act=True)
        self.f_HR_conv1 = _conv(nf, n_colors)

    def forward(self, x):
        x = x / self.rgb_range
        grad_lr = self.get_g_nopadding(x)
        blocks = self.model[1].sub
        feat = self.model[0](x)
        trunk = feat
        after = {0: trunk}
        for i in range(self.n_rrdb):
            trunk = blocks[i](trunk)
            if i + 1 in self.taps:
                after[i + 1] = trunk
        taps = [after[n] for n in self.taps]
        feat = feat + blocks[self.n_rrdb](trunk)
        sr_feat = self.HR_conv1_new(self.model[2:](feat))

        b_feat = self.b_fea_conv(grad_lr)
        branch = b_feat
        for i, tap in enumerate(taps, 1):
            branch = getattr(self, f'b_block_{i}')(torch.cat([branch, tap], 1))
            branch = getattr(self, f'b_concat_{i}')(branch)
        branch = self.b_module(self.b_LR_conv(branch) + b_feat)
        grad_branch = self.conv_w(branch)

        fused = self.f_concat(self.f_block(torch.cat([branch, sr_feat], 1)))
        sr = self.f_HR_conv1(self.f_HR_conv0(fused))
        r = self.rgb_range
        if not self.training:
            return sr * r
        return {'sr': sr * r, 'grad_branch': grad_branch * r, 'grad_lr': grad_lr * r}
