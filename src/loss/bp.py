"""Loss type BP: back-projection L1, as BebyGAN: the SR image resized back to the LR size
with MATLAB's bicubic (``imresize``, antialiased) against the LR image.

``forward(sr, hr, lr)``: sr [B, C, s*h, s*w], lr [B, C, h, w], both in [0, rgb_range] ->
scalar mean |imresize(sr, 1/s) - lr| (pixel units).  The LR batch comes through the step
protocol (``NEEDS``).  The official code uses its own port of MATLAB's imresize
(bebyganssl_model.py); the project's imresize.py gives the same values (tested).
"""
import torch.nn as nn
import torch.nn.functional as F

from imresize import imresize


class BackProjectionL1(nn.Module):
    NEEDS = ('lr',)

    def forward(self, sr, hr, lr):
        scale = sr.shape[-1] // lr.shape[-1]
        return F.l1_loss(imresize(sr, scale=1 / scale), lr)


def make_loss(args):
    return BackProjectionL1()
