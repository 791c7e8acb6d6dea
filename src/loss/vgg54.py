"""Loss type VGG54: distance between VGG19 conv5_4 features (before ReLU) of sr
and hr: MSE, or L1 with --vgg_criterion l1.

High-level perceptual loss of EDSR-PyTorch (``5*VGG54+0.15*GAN``), on ESRGAN's
pre-activation features.  Weights: a torchvision vgg19 state_dict file given with
--vgg_weights (see _vgg.py); nothing is downloaded.
"""
from . import _vgg

# Flags only this loss type reads: refused by option.parse_args when no term reads them.
FLAGS = ('vgg_criterion', 'vgg_weights')


def make_loss(args):
    return _vgg.make_vgg_loss(args, '54')
