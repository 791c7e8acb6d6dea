"""EPS: the diffusion objective, mean squared error between the predicted and the drawn noise.

A diffusion model (e.g. ``--model DiffSR``) returns both in training as the auxiliary
outputs ``noise`` and ``noise_pred`` (step protocol, see ``loss/__init__.py``); they are
not images, so ``--loss_range`` leaves them alone.  This is ``loss_simple`` of ldm's
``p_losses`` (eps parameterisation, l2, no learnt log-variance or ELBO term, the setting
of ChrisDud0257/SSL's ``configs/SSL/base.yaml``): the mean over every element.
"""
import torch.nn as nn
import torch.nn.functional as F


class NoiseMSE(nn.Module):
    """mean((noise_pred - noise)^2) over [B, C, H, W]; sr and hr are not used."""

    NEEDS = ('noise', 'noise_pred')

    def forward(self, sr, hr, noise, noise_pred):
        return F.mse_loss(noise_pred.float(), noise.float())


def make_loss(args):
    return NoiseMSE()
