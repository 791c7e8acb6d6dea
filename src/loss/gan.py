"""Loss type GAN: standard (vanilla) adversarial loss, as EDSR-PyTorch (``5*VGG54+0.15*GAN``).

BCE with logits, the generator trained towards the "real" label (BasicSR ``GANLoss``,
``gan_type: vanilla``).  The term trains its own discriminator (see _adversarial.py), chosen
by ``--discriminator`` (default ``vgg``, ESRGAN's VGG-style network for any patch; see
src/discriminator/), --gan_k updates per generator step; ``--d_pre_train FILE`` starts it
from a file in its official layout.
"""
from . import _adversarial

# Flags only the GAN-type terms read: refused by option.parse_args when no term reads them.
FLAGS = ('gan_k', 'discriminator', 'd_pre_train')


def make_loss(args):
    return _adversarial.make_adversarial(args, relativistic=False)
