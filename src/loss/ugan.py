"""Loss type UGAN: Real-ESRGAN's adversarial term, a vanilla GAN with the U-Net discriminator.

BCE with logits on the discriminator's per-pixel logits (mean over pixels), the generator
trained towards "real" (BasicSR ``GANLoss``, ``gan_type: vanilla``).  The term trains its own
``UNetDiscriminatorSN`` (see _unet_discriminator.py) with Adam (--lr, --betas), --gan_k
updates per generator step, in the order of the other GAN terms (see _adversarial.py).
``--d_pre_train PATH`` starts the discriminator from BasicSR-layout weights such as
Real-ESRGAN's ``RealESRGAN_x4plus_netD.pth`` (read from 'params'), loaded strictly.
"""
from . import _adversarial

# Flags only this loss type reads: refused by option.parse_args when no term reads them.
FLAGS = ('gan_k', 'd_pre_train')


def make_loss(args):
    return _adversarial.make_adversarial(args, relativistic=False, unet=True)
