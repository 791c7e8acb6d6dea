"""Loss type GRAD_RGAN: SPSR's second adversarial term, a relativistic-average GAN on
gradient maps.

Its own discriminator (BasicSR's VGG-128: the registry's ``vgg``, which is ``vgg128`` at
128x128 patches, keys included, and takes other patches >= 32 through its adaptive pool;
with its own Adam optimiser) judges the gradient maps (gradient.py, of the [0, 1] images) of sr and hr,
as the official ``net_d_grad``; otherwise the term is RGAN (see _adversarial.py), --gan_k
updates per generator step.  ``--d_grad_pre_train FILE`` starts that discriminator from a
file in its layout (SPSR's released ``net_d_grad``: plain or ``{'params'}``); the image
discriminator of RGAN keeps --discriminator / --d_pre_train.

forward(sr, hr): [B, C, 128, 128] in [0, rgb_range] -> scalar generator loss.
"""
import utility
from gradient import GradientMap

from . import _adversarial

# Flags only this loss type reads: refused by option.parse_args when no term reads them.
FLAGS = ('gan_k', 'd_grad_pre_train')
DISCRIMINATOR = 'vgg'


class GradientView(GradientMap):
    """(fake, real) [0, 1] images -> their gradient maps (what the discriminator sees)."""

    def forward(self, fake, real):
        return super().forward(fake), super().forward(real)


def make_loss(args):
    # the image term's --d_pre_train is not this network's
    term = _adversarial.make_adversarial(args.replace(d_pre_train=''), relativistic=True,
                                         name='GRAD_RGAN', view=GradientView(1.0),
                                         choice=DISCRIMINATOR)
    path = getattr(args, 'd_grad_pre_train', '')
    if path:
        import model as model_pkg
        source = f'--d_grad_pre_train {path}'
        model_pkg.load_state_dict_explained(
            term.discriminator, utility.load_pt(path, source), source,
            hint='it is not a VGG-128 discriminator (BasicSR VGGStyleDiscriminator, input '
                 '128), the layout of SPSR\'s gradient discriminator')
    return term
