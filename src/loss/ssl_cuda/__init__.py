"""Patch distances of the self-similarity loss (SSL), as a compiled op.

``patch_distances(image, mask, search, window)`` returns, for every masked pixel m (rows in
the order of ``torch.nonzero(mask)``: batch, row, column) and every offset d of the
search x search square (row-major, offset (-P, -P) first, P = search // 2)::

    D[m, d] = sum_c sum_k (A[m+k] - in(d+k) * A[m+d+k])^2

with A the image reflect-padded by P, k the window x window offsets, and in(v) = 1 when
both components of v lie within +-P, else 0 (window pixels that leave the search square
count as zero, as in the published implementations). The op works on the values it is
given; the SSL loss passes images scaled to [0, 1].

C++ kernel on CPU (parallel, deterministic), CUDA kernel on GPU; built on first use
(see _build.py). ``reference.patch_distances_reference`` is the slow pure-PyTorch oracle.
``graph`` and ``graph_loss`` (graph.py) turn distances into the SSL graphs and loss.
``ssl_loss_fused`` does the whole loss (both images' distances, graphs, loss and the SR
gradient) in one compiled pass on CPU, float32: what ``loss.ssl.SSL`` uses when training on
the CPU.
"""
import contextlib

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

import utility

from . import _build
from .graph import graph, graph_loss


class _PatchDistances(torch.autograd.Function):
    """D from the padded image; the gradient goes to the padded image (F.pad folds it)."""

    @staticmethod
    def forward(ctx, padded, pos, search, window):
        ext = _build.load()
        with _on_device(padded):
            out = ext.forward(padded, pos, search, window, _stream(padded))
        ctx.save_for_backward(padded, pos)
        ctx.search, ctx.window = search, window
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        padded, pos = ctx.saved_tensors
        ext = _build.load()
        with _on_device(padded):
            grad_padded = ext.backward(padded, pos, grad.to(padded.dtype).contiguous(),
                                       ctx.search, ctx.window, _stream(padded))
        return grad_padded, None, None, None


def _on_device(t):
    """Makes t's GPU the current one while its kernels are launched (no-op on CPU)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _stream(t):
    """The current CUDA stream of t's device as an integer (0 on CPU)."""
    if t.is_cuda:
        return torch.cuda.current_stream(t.device).cuda_stream
    return 0


def _check(image, mask, search, window):
    if not isinstance(image, torch.Tensor) or image.dim() != 4:
        raise ValueError('patch_distances: image must be a [B, C, H, W] tensor')
    if not image.is_floating_point():
        raise TypeError(f'patch_distances: image must be floating point, got {image.dtype}')
    b, _, h, w = image.shape
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (b, 1, h, w):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f'patch_distances: mask must be [B, 1, H, W] = {(b, 1, h, w)}, got {got}')
    if mask.device != image.device:
        raise ValueError(f'patch_distances: mask on {mask.device}, image on {image.device}')
    for name, v in (('search', search), ('window', window)):
        if not isinstance(v, int) or v < 1 or v % 2 == 0:
            raise ValueError(f'patch_distances: {name} must be a positive odd int, got {v!r}')
    if window > search:
        raise ValueError(f'patch_distances: window {window} is larger than the search square '
                         f'{search}')
    need = search // 2 + 1
    if h < need or w < need:
        raise ValueError(f'patch_distances: images need at least search//2+1 = {need} pixels '
                         f'per side for search {search}, got {h}x{w}')


def patch_distances(image, mask, search=25, window=9):
    """Squared patch distances between each masked pixel's window and its search square.

    image: [B, C, H, W] floating point, any strides, any device with a kernel (CPU, CUDA).
        float64 is computed in float64; float32, float16 and bfloat16 in float32.
    mask: [B, 1, H, W] bool or numbers 0/1, on the image's device.
    search, window: odd sizes, window <= search; H, W >= search // 2 + 1.
    Returns [N, search * search] (N = number of masked pixels), float64 for float64 input
    and float32 otherwise (half precision cannot hold these sums), differentiable with
    respect to ``image``. In the units of image values squared; >= 0.
    """
    _check(image, mask, search, window)
    if image.device.type != 'cpu' and not (image.is_cuda and _build.load().has_cuda()):
        raise utility.UserError(
            f'the SSL op has no kernel for {image.device} in this build (CUDA kernels are '
            'built only when torch has CUDA and the CUDA toolkit is installed); install the '
            'CUDA toolkit (nvcc) or train on the CPU')
    if mask.dtype != torch.bool:
        if ((mask != 0) & (mask != 1)).any():
            raise ValueError('patch_distances: a numeric mask must hold only 0 and 1')
    pos = torch.nonzero(mask[:, 0]).contiguous()
    work = image if image.dtype in (torch.float32, torch.float64) else image.float()
    p = search // 2
    padded = F.pad(work, (p, p, p, p), mode='reflect') if p else work
    return _PatchDistances.apply(padded.contiguous(), pos, search, window)


class _FusedSSLLoss(torch.autograd.Function):
    """The SSL loss of scale * sr and scale * hr from one compiled pass (which pads the images
    and folds the padding back out of the gradient itself), with dloss/dsr; backward scales
    that by the incoming gradient."""

    @staticmethod
    def forward(ctx, sr, hr, pos, search, window, a, normalize, kl, scale):
        loss, grad = _build.load().ssl_loss(sr.contiguous(), hr.contiguous(), pos, search,
                                            window, a, normalize, kl, scale)
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        grad, = ctx.saved_tensors
        return grad * grad_loss, None, None, None, None, None, None, None, None


def can_fuse(sr, hr, search):
    """Whether ssl_loss_fused serves these inputs: CPU float32 images, search > 1."""
    return (sr.device.type == 'cpu' and hr.device.type == 'cpu' and search > 1
            and sr.dtype == torch.float32 and hr.dtype == torch.float32)


def ssl_loss_fused(sr, hr, mask, search, window, sigma, normalize=True, kl=1.0, scale=1.0):
    """The SSL loss of ``graph_loss(patch_distances(scale * sr, ...), patch_distances(scale *
    hr, ...), ...)`` (HR without gradient) in one compiled pass: CPU, float32 (``can_fuse``),
    mask with at least one pixel. scale multiplies the images inside the pass (as a float32
    product, like ``sr * scale``). Equal to the two-step form to float rounding; it never
    makes the [N, search^2] distance and gradient arrays, nor the padded images in torch."""
    _check(sr, mask, search, window)
    if tuple(hr.shape) != tuple(sr.shape):
        raise ValueError(f'ssl_loss_fused: hr {tuple(hr.shape)} and sr {tuple(sr.shape)} differ')
    pos = torch.nonzero(mask[:, 0]).contiguous()
    if pos.shape[0] == 0:
        raise ValueError('ssl_loss_fused: the mask has no pixel')
    a = 1.0 / (sr.shape[1] * window * window * sigma)
    return _FusedSSLLoss.apply(sr, hr.detach(), pos, search, window, a, bool(normalize),
                               float(kl), float(scale))


__all__ = ['patch_distances', 'graph', 'graph_loss', 'ssl_loss_fused', 'can_fuse']
