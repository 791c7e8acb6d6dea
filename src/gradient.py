"""SPSR's gradient map (Ma et al., CVPR 2020): the per-channel magnitude of central
differences, ``sqrt(dv^2 + dh^2 + eps)`` with ``dv = x[i+1, j] - x[i-1, j]`` and
``dh = x[i, j+1] - x[i, j-1]``, zero outside the image (the official
``Get_gradient_nopadding``, whose name notwithstanding pads each side with one zero).

The official code computes it on images in [0, 1] with eps = 1e-6; ``GradientMap`` takes
the image range and scales eps by its square, so that the map of an image in [0, R] is R
times the official map of the same image in [0, 1].
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-6   # official, for images in [0, 1]


class GradientMap(nn.Module):
    """[B, C, H, W] in [0, value_range] -> [B, C, H, W] gradient magnitudes (>= 0).

    The two difference kernels are buffers named ``weight_h`` / ``weight_v`` (the keys of
    SPSR's released files); every channel uses the same pair.
    """

    def __init__(self, value_range=1.0):
        super().__init__()
        self.eps = EPS * float(value_range) ** 2
        self.register_buffer('weight_h', torch.tensor([[[[0., 0., 0.], [-1., 0., 1.], [0., 0., 0.]]]]))
        self.register_buffer('weight_v', torch.tensor([[[[0., -1., 0.], [0., 0., 0.], [0., 1., 0.]]]]))

    def forward(self, x):
        c = x.shape[1]
        kernels = torch.cat([self.weight_v, self.weight_h]).to(x.dtype).repeat(c, 1, 1, 1)
        # one grouped conv: channel k gives outputs 2k (vertical) and 2k+1 (horizontal)
        diff = F.conv2d(x, kernels, padding=1, groups=c)
        dv, dh = diff[:, 0::2], diff[:, 1::2]
        return torch.sqrt(dv * dv + dh * dh + self.eps)
