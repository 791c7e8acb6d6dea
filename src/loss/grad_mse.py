"""Loss type GRAD_MSE: SPSR's gradient-map pixel loss, the mean squared difference between
the gradient maps (gradient.py) of sr and hr.

``forward(sr, hr)``: [B, C, H, W] in [0, rgb_range] -> scalar (squared pixel units of the
maps, which are in image units).
"""
import torch.nn as nn
import torch.nn.functional as F

from gradient import GradientMap


class GradientMSE(nn.Module):
    def __init__(self, rgb_range=255):
        super().__init__()
        self.grad = GradientMap(rgb_range)

    def forward(self, sr, hr):
        return F.mse_loss(self.grad(sr), self.grad(hr.detach()))


def make_loss(args):
    return GradientMSE(args.rgb_range)
