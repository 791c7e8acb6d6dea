"""RRDBNet: the ESRGAN generator (Wang et al., ECCV workshops 2018).

A trunk of Residual-in-Residual Dense Blocks (RRDB) without batch normalisation, then
nearest-neighbour x2 upsampling stages, each followed by a 3x3 conv and LeakyReLU(0.2).

Parameter names follow BasicSR's ``RRDBNet`` (``conv_first``, ``body.N.rdbK.convJ``,
``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``), so a published
generator state_dict in BasicSR layout (e.g. ESRGAN_PSNR_SRx4_DF2K_official-150ff491.pth,
under its ``params`` key) loads strictly.

KAIR's ``models/network_rrdbnet.py`` files (the SSL paper's BSRGAN recipes start from
``BSRGAN_PSNR/0_G.pth``) use the old ESRGAN names (``RRDB_trunk.N.RDBk.convJ``,
``trunk_conv``, ``upconv1``, ``upconv2``, ``HRconv``) for the same x4 network:
``adapt_to_state_dict`` renames them, so those files load strictly too.

x2 uses BasicSR's layout as well: the LR image is pixel-unshuffled by 2 (``n_colors * 4``
input channels to ``conv_first``), and the same two x2 upsampling stages as at x4 bring it
back to twice the LR size.  The trunk then runs at half the LR resolution (a quarter of the
x4 cost per output pixel) and x2 weights in BasicSR layout (RealESRGAN_x2plus.pth) load
strictly.  An LR image with an odd side is padded by edge replication to even size and the
output is cropped back, so any input size works (for example --chop tiles).

Files in the old ESRGAN / mmsr layout (``RRDB_trunk.N.RDB1.conv1``, ``trunk_conv``,
``upconv1``, ``upconv2``, ``HRconv``: plain state_dicts such as BebyGAN's
``RRDB_warmup.pth`` and the SSL repository's ``RRDBBebyGANNet``) load too: their keys are
renamed to the names above (``from_other_layout``), the network is the same.
"""
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

import utility

SCALES = (2, 4)
MULTI_SCALE = False
INPUT_LARGE = False

# ESRGAN scales every residual branch by this before adding it back.
RESIDUAL_SCALE = 0.2


def make_model(args):
    return RRDBNet(scale=args.scale[0], n_colors=args.n_colors, n_feats=args.n_feats,
                   n_rrdb=args.n_rrdb, growth=args.rrdb_growth, rgb_range=args.rgb_range)


# Old ESRGAN / mmsr key names -> ours (prefixes; the RDB index within an RRDB by regex).
_OLD_NAMES = (('RRDB_trunk.', 'body.'), ('trunk_conv.', 'conv_body.'), ('upconv1.', 'conv_up1.'),
              ('upconv2.', 'conv_up2.'), ('HRconv.', 'conv_hr.'))


def _rename_old_key(key):
    for old, new in _OLD_NAMES:
        if key.startswith(old):
            key = new + key[len(old):]
            break
    return re.sub(r'\.RDB([123])\.', r'.rdb\1.', key)


def _init_small(convs, gain):
    """Kaiming-normal weights times ``gain``, zero bias.

    ESRGAN initialises the dense-block convs at a tenth of the usual scale so that a deep
    trunk of residual blocks starts close to the identity.
    """
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight, a=0, mode='fan_in')
        conv.weight.data.mul_(gain)
        nn.init.zeros_(conv.bias)


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and every earlier output.

    [B, n_feats, H, W] -> [B, n_feats, H, W].
    """

    def __init__(self, n_feats, growth):
        super().__init__()
        for i in range(1, 5):
            setattr(self, f'conv{i}', nn.Conv2d(n_feats + (i - 1) * growth, growth, 3, 1, 1))
        self.conv5 = nn.Conv2d(n_feats + 4 * growth, n_feats, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        _init_small([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x):
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(self.lrelu(conv(torch.cat(feats, 1))))
        return x + RESIDUAL_SCALE * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Three residual dense blocks inside one more scaled residual connection."""

    def __init__(self, n_feats, growth):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(n_feats, growth)
        self.rdb2 = ResidualDenseBlock(n_feats, growth)
        self.rdb3 = ResidualDenseBlock(n_feats, growth)

    def forward(self, x):
        return x + RESIDUAL_SCALE * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """ESRGAN generator.

    forward: LR [B, n_colors, h, w] in [0, rgb_range] -> SR [B, n_colors, scale*h, scale*w],
    nominally in [0, rgb_range] (not clamped).  The network itself works on [0, 1] images, as
    the published ESRGAN weights expect.
    """

    def __init__(self, scale=4, n_colors=3, n_feats=64, n_rrdb=23, growth=32, rgb_range=255):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f'RRDBNet supports scales {SCALES}, got {scale}')
        self.scale = scale
        self.rgb_range = rgb_range
        # x2: pixel-unshuffle by 2 first, then the same x4 upsampling path (see module doc).
        self.unshuffle = 2 if scale == 2 else 1
        self.conv_first = nn.Conv2d(n_colors * self.unshuffle ** 2, n_feats, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(n_feats, growth) for _ in range(n_rrdb)])
        self.conv_body = nn.Conv2d(n_feats, n_feats, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(n_feats, n_feats, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(n_feats, n_feats, 3, 1, 1)
        self.conv_hr = nn.Conv2d(n_feats, n_feats, 3, 1, 1)
        self.conv_last = nn.Conv2d(n_feats, n_colors, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def from_other_layout(self, state_dict):
        """The old ESRGAN / mmsr / KAIR key names renamed to ours; other files unchanged.
        x4 only: KAIR's x2 network (no pixel-unshuffle, one upsampling stage) is another
        network."""
        if not any(k.startswith(('RRDB_trunk.', 'trunk_conv.')) for k in state_dict):
            return state_dict
        if self.scale != 4:
            raise utility.UserError(f'the weights hold the KAIR/ESRGAN RRDBNet layout (old key '
                                    f'names), which this project reads at x4 only (got '
                                    f'--scale {self.scale}); use --scale 4')
        return {_rename_old_key(k): v for k, v in state_dict.items()}

    def forward(self, x):
        h, w = x.shape[-2:]
        x = x / self.rgb_range
        if self.unshuffle > 1:
            s = self.unshuffle
            pad_h, pad_w = (-h) % s, (-w) % s
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h), mode='replicate')
            x = F.pixel_unshuffle(x, s)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode='nearest')))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        # Crop away what the padding to even size added (x2 only).
        out = out[..., :self.scale * h, :self.scale * w]
        return out * self.rgb_range
