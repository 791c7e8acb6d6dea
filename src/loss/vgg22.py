"""Loss type VGG22: distance between VGG19 conv2_2 features (before ReLU) of sr
and hr: MSE, or L1 with --vgg_criterion l1.

Low-level perceptual loss of EDSR-PyTorch / SRGAN.  Weights: a torchvision vgg19
state_dict file given with --vgg_weights (see _vgg.py); nothing is downloaded.
"""
from . import _vgg

# Flags only this loss type reads: refused by option.parse_args when no term reads them.
FLAGS = ('vgg_criterion', 'vgg_weights')


def make_loss(args):
    return _vgg.make_vgg_loss(args, '22')
