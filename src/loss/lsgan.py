"""Loss type LSGAN: the least-squares GAN term of the SSL paper's KAIR-based BSRGAN recipes.

KAIR ``models/loss.py`` ``GANLoss('lsgan')`` (``nn.MSELoss`` against labels 1.0 real, 0.0
fake) with ``Discriminator_UNet`` (``models/network_discriminator.py``: the U-Net with spectral
normalisation, layer for layer BasicSR's ``UNetDiscriminatorSN``, see
_unet_discriminator.py), as ``options/BSRGAN/train_*SSL*_x4.json`` set them (``gan_type:
lsgan``, ``netD: discriminator_unet``): generator loss MSE(D(sr), 1), discriminator loss
MSE(D(hr), 1) + MSE(D(sr), 0), per-pixel scores averaged.  The term trains its discriminator
with Adam (--lr, --betas), --gan_k updates per generator step, in the order of the other GAN
terms (see _adversarial.py; KAIR updates the generator first, then the discriminator).
``--d_pre_train PATH`` starts the discriminator from a KAIR ``*_D.pth`` file (a plain
state_dict with conv0..conv9 and the spectral-norm keys; BasicSR files under 'params' load
too), loaded strictly: a file of another layout is refused.
"""
from . import _adversarial

# Flags only this loss type reads: refused by option.parse_args when no term reads them.
FLAGS = ('gan_k', 'd_pre_train')


def make_loss(args):
    return _adversarial.make_adversarial(args, relativistic=False, unet=True,
                                         least_squares=True)
