"""Loss type BRANCH_L1: SPSR's gradient-branch loss, the mean absolute difference between
the gradient branch's map of the SR image (the model's auxiliary output ``grad_branch``,
step protocol) and the gradient map (gradient.py) of hr.

``forward(sr, hr, grad_branch)``: hr and grad_branch [B, C, H, W] in [0, rgb_range] units ->
scalar.  Needs a model that returns ``grad_branch`` (--model SPSR).
"""
import torch.nn as nn
import torch.nn.functional as F

from gradient import GradientMap


class GradientBranchL1(nn.Module):
    NEEDS = ('grad_branch',)

    def __init__(self, rgb_range=255):
        super().__init__()
        self.grad = GradientMap(rgb_range)

    def forward(self, sr, hr, grad_branch):
        return F.l1_loss(grad_branch, self.grad(hr.detach()))


def make_loss(args):
    return GradientBranchL1(args.rgb_range)
