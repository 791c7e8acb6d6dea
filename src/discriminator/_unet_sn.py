"""Real-ESRGAN's U-Net discriminator with spectral normalisation (helper of unet.py).

Layer for layer as BasicSR's ``UNetDiscriminatorSN`` (num_in_ch, num_feat 64,
skip_connection True), with its parameter names, so the released
``RealESRGAN_x4plus_netD.pth`` (weights under 'params') loads strictly: conv0 (3x3) and
conv9 (3x3 to one channel) plain; conv1..conv3 (4x4 stride 2, widths 2nf, 4nf, 8nf) and
conv4..conv8 (3x3) without bias, under ``torch.nn.utils.spectral_norm`` (keys
``weight_orig``, ``weight_u``, ``weight_v``).  Decoder: bilinear x2 upsampling (not
aligned corners) before conv4, conv5 and conv6, each added to the encoder feature of the
same size; LeakyReLU(0.2) after every conv but the last.

forward: [B, C, H, W] in [0, 1], H and W multiples of 8 -> [B, 1, H, W] per-pixel logits.
"""
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm


class UNetDiscriminatorSN(nn.Module):
    def __init__(self, n_colors=3, n_feats=64, skip_connection=True):
        super().__init__()
        nf = n_feats
        self.skip_connection = skip_connection
        self.conv0 = nn.Conv2d(n_colors, nf, 3, 1, 1)
        self.conv1 = spectral_norm(nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False))
        self.conv4 = spectral_norm(nn.Conv2d(nf * 8, nf * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(nf * 4, nf * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=False))
        self.conv7 = spectral_norm(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(nf, 1, 3, 1, 1)

    def forward(self, x):
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f'U-Net discriminator input sides must be multiples of 8, got '
                             f'{tuple(x.shape[-2:])}')

        def act(t):
            return F.leaky_relu(t, 0.2)

        def up(t):
            return F.interpolate(t, scale_factor=2, mode='bilinear', align_corners=False)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv8(act(self.conv7(x6))))
        return self.conv9(out)
