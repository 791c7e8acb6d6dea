"""Self-similarity graphs and the SSL loss arithmetic on patch distances.

S = exp(-D / (C * window^2) / sigma), row-normalised by (row sum + 1e-10) unless
``normalize`` is False; loss = mean |S_sr - S_hr| + kl * kl_div(log S_sr, S_hr, 'mean'),
both graphs clamped at 1e-10, the HR side a constant. On CPU with float32 distances the
compiled fused kernel (graph_loss_cpu.cpp) does it in one pass; elsewhere PyTorch ops.
"""
import torch
from torch.autograd.function import once_differentiable

from . import _build


def graph(d, channels, window, sigma, normalize):
    """Graph S [N, search^2] (rows sum to ~1 when normalised) from distances D [N, search^2]."""
    s = torch.exp(d * (-1.0 / (channels * window * window * sigma)))
    if normalize:
        s = s / (s.sum(-1, keepdim=True) + 1e-10)
    return s


def _graph_loss_torch(d_sr, d_hr, channels, window, sigma, normalize, kl):
    s_sr = graph(d_sr, channels, window, sigma, normalize)
    s_hr = graph(d_hr, channels, window, sigma, normalize)
    loss = (s_sr - s_hr).abs().mean()
    if kl:
        t = s_hr.clamp_min(1e-10)
        # torch's kl_div(input, target, 'mean') = mean(target * (log target - input))
        loss = loss + kl * (t * (t.log() - s_sr.clamp_min(1e-10).log())).mean()
    return loss


class _FusedGraphLoss(torch.autograd.Function):
    """Loss from the compiled kernel; it returns dloss/dD_sr too, kept for backward."""

    @staticmethod
    def forward(ctx, d_sr, d_hr, a, normalize, kl):
        loss, grad = _build.load().graph_loss(d_sr, d_hr, a, normalize, kl,
                                              ctx.needs_input_grad[0])
        ctx.save_for_backward(grad if grad is not None else d_sr.new_empty(0))
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        grad, = ctx.saved_tensors
        return grad * grad_loss, None, None, None, None


def graph_loss(d_sr, d_hr, channels, window, sigma, normalize=True, kl=1.0):
    """SSL loss (scalar) from SR and HR distances [N, search^2] (N >= 1); HR gets no gradient."""
    d_hr = d_hr.detach()
    if d_sr.device.type == 'cpu' and d_sr.dtype == torch.float32 and d_hr.dtype == torch.float32:
        a = 1.0 / (channels * window * window * sigma)
        return _FusedGraphLoss.apply(d_sr.contiguous(), d_hr.contiguous(), a, bool(normalize),
                                     float(kl))
    return _graph_loss_torch(d_sr, d_hr, channels, window, sigma, normalize, kl)
