"""Loss type GAN: standard adversarial loss, as EDSR-PyTorch (``5*VGG54+0.15*GAN``).

BCE with logits; the generator is trained towards the "real" label.  The term trains its
own VGG-style discriminator (see _adversarial.py), --gan_k updates per generator step.
"""
from . import _adversarial

# Flags only this loss type reads: refused by option.parse_args when no term reads them.
FLAGS = ('gan_k',)


def make_loss(args):
    return _adversarial.make_adversarial(args, relativistic=False)
