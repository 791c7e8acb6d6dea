"""The VGG-style discriminators of ESRGAN and its followers (helper, not a registry entry).

One network shape covers BasicSR's ``VGGStyleDiscriminator`` (input 128: five stages;
``input_size=256``: six) and the SSL repository's ``Discriminator_VGG_192`` (six stages,
3x3 before the head): stage i is a 3x3 conv and a 4x4 stride-2 conv, each followed by
BatchNorm (none after the very first conv) and LeakyReLU(0.2); widths nf, 2nf, 4nf, 8nf,
8nf[, 8nf]; then two linear layers (8nf * side^2 -> 100 -> 1).  Parameter names are the
official ones (conv{i}_{0,1}, bn{i}_{0,1}, linear1, linear2), so their files load strictly.

``input_size`` None (the project's historical ``vgg`` entry, EDSR-PyTorch's GAN on any
patch): five stages and an adaptive average pool to 4x4, the identity at 128, so the
network and its keys are those of ``vgg128`` there.
"""
import torch.nn as nn


class VGGStyleDiscriminator(nn.Module):
    """forward: [B, n_colors, H, W] in [0, 1] -> [B, 1] logits (unbounded).

    n_stages: stride-2 stages (5 for VGG128 and the adaptive variant, 6 for 192 and 256);
    input_size: the one side the head fits (H = W = input_size), or None for any side >= 32
    with the adaptive pool.
    """

    def __init__(self, n_colors=3, n_feats=64, n_stages=5, input_size=None):
        super().__init__()
        self.input_size = input_size
        self.n_stages = n_stages
        widths = [n_feats * min(2 ** i, 8) for i in range(n_stages)]
        self.conv0_0 = nn.Conv2d(n_colors, widths[0], 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(widths[0], widths[0], 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(widths[0])
        for i in range(1, n_stages):
            setattr(self, f'conv{i}_0', nn.Conv2d(widths[i - 1], widths[i], 3, 1, 1, bias=False))
            setattr(self, f'bn{i}_0', nn.BatchNorm2d(widths[i]))
            setattr(self, f'conv{i}_1', nn.Conv2d(widths[i], widths[i], 4, 2, 1, bias=False))
            setattr(self, f'bn{i}_1', nn.BatchNorm2d(widths[i]))
        side = 4 if input_size is None else input_size >> n_stages
        self.pool = nn.AdaptiveAvgPool2d(4) if input_size is None else nn.Identity()
        self.linear1 = nn.Linear(widths[-1] * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    @property
    def min_size(self):
        return 2 ** self.n_stages

    def forward(self, x):
        size = tuple(x.shape[-2:])
        if self.input_size is None:
            if min(size) < self.min_size:
                raise ValueError(f'discriminator input must be at least {self.min_size} '
                                 f'pixels a side, got {size}')
        elif size != (self.input_size, self.input_size):
            raise ValueError(f'this discriminator takes {self.input_size}x{self.input_size} '
                             f'inputs, got {size}')
        feat = self.lrelu(self.bn0_1(self.conv0_1(self.lrelu(self.conv0_0(x)))))
        for i in range(1, self.n_stages):
            feat = self.lrelu(getattr(self, f'bn{i}_0')(getattr(self, f'conv{i}_0')(feat)))
            feat = self.lrelu(getattr(self, f'bn{i}_1')(getattr(self, f'conv{i}_1')(feat)))
        feat = self.pool(feat).flatten(1)
        return self.linear2(self.lrelu(self.linear1(feat)))


def fixed_size(args, name, input_size, n_stages):
    """The registry entry ``name``: the network for ``input_size`` patches only (64 base
    features, as every official file), refusing (UserError) a run whose HR patches differ."""
    from . import hr_patch_side, refuse_patch
    if hr_patch_side(args) != input_size:
        refuse_patch(name, args, f'{input_size}x{input_size} patches only')
    return VGGStyleDiscriminator(args.n_colors, 64, n_stages=n_stages, input_size=input_size)
