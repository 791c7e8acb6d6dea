"""Loss type UGAN: Real-ESRGAN's adversarial term, i.e. GAN with ``--discriminator unet``.

Kept as a name of its own so that existing command lines and checkpoints (term key 'UGAN')
keep working: a vanilla GAN (BCE with logits, mean over the per-pixel logits, generator
trained towards "real"; BasicSR ``GANLoss``, ``gan_type: vanilla``) against BasicSR's
``UNetDiscriminatorSN`` (src/discriminator/unet.py), trained with Adam (--lr, --betas),
--gan_k updates per generator step (see _adversarial.py).  ``--d_pre_train PATH`` starts the
discriminator from BasicSR-layout weights such as Real-ESRGAN's ``RealESRGAN_x4plus_netD.pth``
(read from 'params'), loaded strictly.  ``--discriminator`` may only repeat ``unet``; for
another network write GAN.
"""
import utility

from . import _adversarial

# Flags only the GAN-type terms read: refused by option.parse_args when no term reads them.
FLAGS = ('gan_k', 'discriminator', 'd_pre_train')


def make_loss(args):
    chosen = getattr(args, 'discriminator', '') or 'unet'
    if chosen.lower() != 'unet':
        raise utility.UserError(f'UGAN is GAN with --discriminator unet; for --discriminator '
                                f'{chosen} write GAN (vanilla) or RGAN (relativistic) in --loss')
    return _adversarial.make_adversarial(args, relativistic=False, default='unet', name='UGAN')
