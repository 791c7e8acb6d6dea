"""Loss type LDL: locally discriminative learning (Liang et al., CVPR 2022), as the SSL
repository's ``ldlssl_model.py`` uses it.

The term is ``L1(M * sr, M * hr)`` (mean over all elements) with M the refined artifact map
of :func:`artifact_map`, computed from this batch's SR, the EMA generator's SR of the same
batch (``sr_ema``: the run needs --ema_decay) and the HR.  As in the official code the map
is not detached: the generator's gradient also flows through M (the pixels where the EMA
output is worse are zeroed).  Units: the map and the L1 are computed on [0, 1] images, so
the term equals the official one whatever --rgb_range and --loss_range are.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def _local_variance(x, ksize):
    """Unbiased variance of ``x`` [B, 1, H, W] over each pixel's ksize x ksize window, the
    image reflect-padded by ksize // 2 (float64 inside: E[x^2] - E[x]^2 cancels)."""
    pad = ksize // 2
    x = F.pad(x.double(), (pad, pad, pad, pad), mode='reflect')
    n = ksize * ksize
    mean = F.avg_pool2d(x, ksize, stride=1)
    mean_sq = F.avg_pool2d(x * x, ksize, stride=1)
    return ((mean_sq - mean * mean) * (n / (n - 1))).clamp_min(0)


def artifact_map(sr, sr_ema, hr, ksize=7, rgb_range=255):
    """LDL's refined artifact map: [B, 1, H, W] weights, as BasicSR's
    ``get_refined_artifact_map(hr, sr, sr_ema, ksize)`` gives them on [0, 1] images.

    sr, sr_ema, hr: [B, C, H, W] in [0, rgb_range] (H, W > ksize // 2).  With r = sum over
    channels of |hr - sr| (on [0, 1]): M = var(r over the image)^(1/5) * (unbiased
    variance of r over each ksize window), and 0 where r < sum_c |hr - sr_ema|.  Gradients
    flow through sr.
    """
    scale = 1.0 / rgb_range
    residual = ((hr - sr) * scale).abs().sum(1, keepdim=True)
    residual_ema = ((hr - sr_ema) * scale).abs().sum(1, keepdim=True)
    patch = residual.var(dim=(1, 2, 3), keepdim=True) ** 0.2
    weight = patch * _local_variance(residual, ksize).to(residual.dtype)
    return weight.masked_fill(residual < residual_ema, 0.0)


class LDLLoss(nn.Module):
    """forward(sr, hr, sr_ema): [B, C, H, W] in [0, rgb_range] -> scalar, in [0, 1] units."""

    NEEDS = ('sr_ema',)

    def __init__(self, rgb_range=255, ksize=7):
        super().__init__()
        self.rgb_range, self.ksize = rgb_range, ksize

    def forward(self, sr, hr, sr_ema):
        weight = artifact_map(sr, sr_ema, hr, self.ksize, self.rgb_range)
        return F.l1_loss(weight * sr, weight * hr) / self.rgb_range


def make_loss(args):
    # ksize 7: ldlssl_model.py calls get_refined_artifact_map(gt, output, output_ema, 7)
    return LDLLoss(rgb_range=args.rgb_range)
