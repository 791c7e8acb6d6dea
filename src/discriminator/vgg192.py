"""``Discriminator_VGG_192(in_chl, nf=64)`` of the SSL repository (ELAN-GAN, BebyGAN).

GAN-Based-SR/basicsr/archs/discriminator_arch.py (BebyGAN's network): six stride-2 stages
take 192x192 to 3x3, then linear 8nf*9 -> 100 -> 1.  Parameter names are the official ones
(see _vgg_style.py), so its files load strictly.  Input 192x192 only.
"""
from . import _vgg_style, hr_patch_side, refuse_patch

INPUT_SIZE = 192


def make_discriminator(args):
    if hr_patch_side(args) != INPUT_SIZE:
        refuse_patch('vgg192', args, f'{INPUT_SIZE}x{INPUT_SIZE} patches only')
    return _vgg_style.VGGStyleDiscriminator(args.n_colors, 64, n_stages=6,
                                            input_size=INPUT_SIZE)
