"""ESRGAN's VGG-style discriminator for any training patch of 32 or more (EDSR-PyTorch's GAN).

Five stride-2 stages, then an adaptive average pool to 4x4 (see _vgg_style.py): at 128 the
pool is the identity and the network, parameter names included, is BasicSR's
``VGGStyleDiscriminator`` (``vgg128``).  The default of GAN and RGAN, so that runs and
checkpoints made before the registry existed keep their network.
"""
from . import _vgg_style, hr_patch_side, refuse_patch


def make_discriminator(args):
    net = _vgg_style.VGGStyleDiscriminator(args.n_colors, 64, n_stages=5, input_size=None)
    if hr_patch_side(args) < net.min_size:
        refuse_patch('vgg', args, f'patches of at least {net.min_size} pixels a side '
                                  f'(five stride-2 stages)')
    return net
