"""BasicSR's ``VGGStyleDiscriminator(num_in_ch, num_feat=64)``: input 128x128 only.

ESRGAN, LDL and SPSR (the SSL repository's train_ESRGANSSL / LDLSSL / SPSRSSL YAMLs,
``network_d: VGGStyleDiscriminator``).  Five stride-2 stages to 4x4, no pooling.
Parameter names are BasicSR's (see _vgg_style.py), so its files load strictly.
"""
from . import _vgg_style

INPUT_SIZE = 128


def make_discriminator(args):
    return _vgg_style.fixed_size(args, 'vgg128', INPUT_SIZE, n_stages=5)
