"""BasicSR's ``VGGStyleDiscriminator(num_in_ch, 64, input_size=256)``: input 256x256 only.

SwinIR-GAN (the SSL repository's train_SwinIRGANSSL YAML, ``input_size: 256``): six
stride-2 stages to 4x4 (BasicSR adds conv5_0 / conv5_1 and their BatchNorms), no pooling.
Parameter names are BasicSR's (see _vgg_style.py), so its files load strictly.
"""
from . import _vgg_style, hr_patch_side, refuse_patch

INPUT_SIZE = 256


def make_discriminator(args):
    if hr_patch_side(args) != INPUT_SIZE:
        refuse_patch('vgg256', args, f'{INPUT_SIZE}x{INPUT_SIZE} patches only')
    return _vgg_style.VGGStyleDiscriminator(args.n_colors, 64, n_stages=6,
                                            input_size=INPUT_SIZE)
