"""``Discriminator_VGG_296(in_nc, nf=64)`` of the SSL repository (RankSRGAN).

GAN-Based-SR/basicsr/archs/ranksrgan_arch.py: five stride-2 stages take 296x296 to 9x9
(296, 148, 74, 37, 18, 9), then linear 8nf*81 -> 100 -> 1.  Parameter names are the
official ones (see _vgg_style.py), so its files load strictly.  Input 296x296 only.
"""
from . import _vgg_style

INPUT_SIZE = 296


def make_discriminator(args):
    return _vgg_style.fixed_size(args, 'vgg296', INPUT_SIZE, n_stages=5)
