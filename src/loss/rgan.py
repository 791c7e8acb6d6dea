"""Loss type RGAN: relativistic average GAN, as ESRGAN.

The discriminator judges whether hr looks more real than sr on average,
D_ra(x_r, x_f) = sigmoid(C(x_r) - mean C(x_f)); the generator loss uses both directions.
The term trains its own VGG-style discriminator (see _adversarial.py), --gan_k updates
per generator step.
"""
from . import _adversarial

# Flags only this loss type reads: refused by option.parse_args when no term reads them.
FLAGS = ('gan_k',)


def make_loss(args):
    return _adversarial.make_adversarial(args, relativistic=True)
