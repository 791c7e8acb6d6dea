"""BasicSR's ``VGGStyleDiscriminator(num_in_ch, 64, input_size=256)``: input 256x256 only.

SwinIR-GAN (the SSL repository's train_SwinIRGANSSL YAML, ``input_size: 256``): six
stride-2 stages to 4x4 (BasicSR adds conv5_0 / conv5_1 and their BatchNorms), no pooling.
Parameter names are BasicSR's (see _vgg_style.py), so its files load strictly.
"""
from . import _vgg_style

INPUT_SIZE = 256


def make_discriminator(args):
    return _vgg_style.fixed_size(args, 'vgg256', INPUT_SIZE, n_stages=6)
