"""Loss type LSGAN: the least-squares GAN term of the SSL paper's KAIR-based BSRGAN recipes.

KAIR ``models/loss.py`` ``GANLoss('lsgan')`` (``nn.MSELoss`` against labels 1.0 real, 0.0
fake), as ``options/BSRGAN/train_*SSL*_x4.json`` set it (``gan_type: lsgan``): generator loss
MSE(D(sr), 1), discriminator loss MSE(D(hr), 1) + MSE(D(sr), 0), every output averaged.  The
network is ``--discriminator`` (default ``unet``: KAIR's ``Discriminator_UNet`` of
``models/network_discriminator.py``, the JSONs' ``discriminator_unet``, is layer for layer and
name for name BasicSR's ``UNetDiscriminatorSN``, see src/discriminator/unet.py), trained with
Adam (--lr, --betas), --gan_k updates per generator step, in the order of the other GAN terms
(see _adversarial.py; KAIR updates the generator first, then the discriminator).
``--d_pre_train PATH`` starts it from a KAIR ``*_D.pth`` file (a plain state_dict), loaded
strictly: a file of another layout is refused.
"""
from . import _adversarial

# Flags only the GAN-type terms read: refused by option.parse_args when no term reads them.
FLAGS = ('gan_k', 'discriminator', 'd_pre_train')


def make_loss(args):
    return _adversarial.make_adversarial(args, relativistic=False, default='unet',
                                         least_squares=True)
