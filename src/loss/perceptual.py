"""Loss type PERCEPTUAL: BasicSR's multi-layer VGG19 perceptual loss, as Real-ESRGAN uses it.

``sum_l w_l * L1(phi_l(sr), phi_l(hr))`` over VGG19 features taken before the ReLU of
conv1_2, conv2_2, conv3_4, conv4_4 and conv5_4 with weights 0.1, 0.1, 1, 1, 1 (Real-ESRGAN's
``train_realesrgan_x4plus.yml`` and the SSL repository's RealESRGANSSL config:
``perceptual_opt`` with ``use_input_norm: true``, ``range_norm: false``, ``criterion: l1``,
``style_weight: 0``); each distance is the mean absolute difference (``--vgg_criterion
mse`` makes it the mean squared one).  Inputs are ImageNet-normalised.  Weights: a
torchvision vgg19 state_dict given with --vgg_weights (see _vgg.py); nothing is downloaded.
``--perceptual_layers`` picks other layers and weights (BebyGAN's config:
``conv3_4:0.125+conv4_4:0.25+conv5_4:0.5``).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

import utility

from . import _vgg

# Flags only this loss type reads: refused by option.parse_args when no term reads them.
FLAGS = ('vgg_criterion', 'vgg_weights', 'perceptual_layers')

# torchvision vgg19 ``features`` index of each conv (the features are its output, pre-ReLU)
LAYERS = {'conv1_2': 2, 'conv2_2': 7, 'conv3_4': 16, 'conv4_4': 25, 'conv5_4': 34}
LAYER_WEIGHTS = {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1.0, 'conv4_4': 1.0, 'conv5_4': 1.0}


class PerceptualLoss(nn.Module):
    """forward(sr, hr): [B, 3, H, W] in [0, rgb_range], H, W >= 16 -> scalar.

    hr features are computed without gradient.
    """

    def __init__(self, weights='', rgb_range=255, criterion='l1', layer_weights=None):
        super().__init__()
        if criterion not in ('mse', 'l1'):
            raise ValueError(f"criterion must be 'mse' or 'l1', got {criterion!r}")
        self.layer_weights = dict(LAYER_WEIGHTS if layer_weights is None else layer_weights)
        unknown = set(self.layer_weights) - set(LAYERS)
        if unknown:
            raise ValueError(f'unknown VGG layers {sorted(unknown)}; known: {list(LAYERS)}')
        self.criterion = criterion
        self.vgg = _vgg.VGG19Features('54', _vgg.load_vgg19_state(weights), rgb_range)
        self.wanted = {LAYERS[k]: k for k in self.layer_weights}
        self.depth = max(self.wanted) + 1

    def features(self, x):
        """{layer name: pre-ReLU features} of x [B, 3, H, W] in [0, rgb_range]."""
        x = (x / self.vgg.rgb_range - self.vgg.mean) / self.vgg.std
        out = {}
        for index, layer in enumerate(self.vgg.features[:self.depth]):
            # not in place: the pre-ReLU output of a wanted conv is kept
            x = F.relu(x) if isinstance(layer, nn.ReLU) else layer(x)
            if index in self.wanted:
                out[self.wanted[index]] = x
        return out

    def forward(self, sr, hr):
        feat_sr = self.features(sr)
        with torch.no_grad():
            feat_hr = self.features(hr.detach())
        distance = F.mse_loss if self.criterion == 'mse' else F.l1_loss
        total = 0.0
        for name, w in self.layer_weights.items():
            total = total + w * distance(feat_sr[name].float(), feat_hr[name].float())
        return total


def make_loss(args):
    if args.n_colors != 3:
        raise utility.UserError(f'PERCEPTUAL works on RGB images, but --n_colors is '
                                f'{args.n_colors}; use --n_colors 3')
    if args.patch_size < 16:
        raise utility.UserError(f'PERCEPTUAL needs --patch_size >= 16 (VGG19 halves the size '
                                f'four times before conv5_4), got {args.patch_size}')
    return PerceptualLoss(weights=args.vgg_weights, rgb_range=args.rgb_range,
                          criterion=args.vgg_criterion,
                          layer_weights=parse_layers(getattr(args, 'perceptual_layers', '')))


def parse_layers(text):
    """'conv3_4:0.125+conv5_4:0.5' -> {'conv3_4': 0.125, 'conv5_4': 0.5}; '' -> None (the
    default LAYER_WEIGHTS).  UserError (one line) for anything else."""
    if not text.strip():
        return None
    out = {}
    for part in text.split('+'):
        name, _, weight = part.strip().partition(':')
        try:
            value = float(weight)
        except ValueError:
            value = float('nan')
        if name not in LAYERS or not value > 0 or value == float('inf') or name in out:
            raise utility.UserError(
                f'--perceptual_layers {text!r}: {part.strip()!r} is not layer:weight with a '
                f'positive weight and a layer of {", ".join(LAYERS)} given once; e.g. '
                f'conv3_4:0.125+conv4_4:0.25+conv5_4:0.5')
        out[name] = value
    return out
