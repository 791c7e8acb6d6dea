"""Real-ESRGAN's U-Net discriminator with spectral normalisation: per-pixel logits.

BasicSR ``UNetDiscriminatorSN(num_in_ch, num_feat=64, skip_connection=True)`` (see
_unet_sn.py), e.g. ``RealESRGAN_x4plus_netD.pth``.  Any HR patch whose side is a multiple of
8 (the U-Net halves it three times).
"""
from . import _unet_sn, hr_patch_side, refuse_patch


def make_discriminator(args):
    if hr_patch_side(args) % 8:
        refuse_patch('unet', args, 'patches whose side is a multiple of 8 (its U-Net halves '
                                   'the size three times)')
    return _unet_sn.UNetDiscriminatorSN(args.n_colors)
