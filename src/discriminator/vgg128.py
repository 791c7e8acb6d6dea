"""BasicSR's ``VGGStyleDiscriminator(num_in_ch, num_feat=64)``: input 128x128 only.

ESRGAN, LDL and SPSR (the SSL repository's train_ESRGANSSL / LDLSSL / SPSRSSL YAMLs,
``network_d: VGGStyleDiscriminator``).  Five stride-2 stages to 4x4, no pooling.
Parameter names are BasicSR's (see _vgg_style.py), so its files load strictly.
"""
from . import _vgg_style, hr_patch_side, refuse_patch

INPUT_SIZE = 128


def make_discriminator(args):
    if hr_patch_side(args) != INPUT_SIZE:
        refuse_patch('vgg128', args, f'{INPUT_SIZE}x{INPUT_SIZE} patches only')
    return _vgg_style.VGGStyleDiscriminator(args.n_colors, 64, n_stages=5,
                                            input_size=INPUT_SIZE)
