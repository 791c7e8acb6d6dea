"""Loss type RGAN: relativistic average GAN, as ESRGAN.

The discriminator judges whether hr looks more real than sr on average,
D_ra(x_r, x_f) = sigmoid(C(x_r) - mean C(x_f)); the generator loss uses both directions.
The term trains its own discriminator (see _adversarial.py), chosen by ``--discriminator``
(default ``vgg``; the recipes name theirs, e.g. vgg128, vgg192, vgg256: see
src/discriminator/), --gan_k updates per generator step; ``--d_pre_train FILE`` starts it
from a file in its official layout.
"""
from . import _adversarial

# Flags only the GAN-type terms read: refused by option.parse_args when no term reads them.
FLAGS = ('gan_k', 'discriminator', 'd_pre_train')


def make_loss(args):
    return _adversarial.make_adversarial(args, relativistic=True)
