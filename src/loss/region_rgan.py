"""Loss type REGION_RGAN: BebyGAN's region-aware adversarial loss, a relativistic-average GAN
that sees only the textured regions.

The flat-region mask of hr (_flat_mask.py: 11x11 luma windows with a standard deviation
below 0.025 in [0, 1]) is computed every step, and the discriminator judges
``sr * (1 - mask)`` against ``hr * (1 - mask)``, in its updates and in the generator loss,
as bebyganssl_model.py does.  Otherwise the term is RGAN (see _adversarial.py): its network
is --discriminator (BebyGAN: vgg192), started from --d_pre_train, --gan_k updates per step.

forward(sr, hr): [B, 3, H, W] in [0, rgb_range], sizes the discriminator takes -> scalar.
"""
from . import _adversarial
from ._flat_mask import flat_mask

# Flags only the GAN-type terms read: refused by option.parse_args when no term reads them.
FLAGS = ('gan_k', 'discriminator', 'd_pre_train')


def textured_regions(fake, real):
    """(fake, real) [0, 1] images with the flat regions of real set to 0 in both."""
    keep = 1 - flat_mask(real)
    return fake * keep, real * keep


def make_loss(args):
    return _adversarial.make_adversarial(args, relativistic=True, name='REGION_RGAN',
                                         view=textured_regions)
