"""``Discriminator_VGG_192(in_chl, nf=64)`` of the SSL repository (ELAN-GAN, BebyGAN).

GAN-Based-SR/basicsr/archs/discriminator_arch.py (BebyGAN's network): six stride-2 stages
take 192x192 to 3x3, then linear 8nf*9 -> 100 -> 1.  Parameter names are the official ones
(see _vgg_style.py), so its files load strictly.  Input 192x192 only.
"""
from . import _vgg_style

INPUT_SIZE = 192


def make_discriminator(args):
    return _vgg_style.fixed_size(args, 'vgg192', INPUT_SIZE, n_stages=6)
