"""Self-similarity loss (SSL, Chen et al., ACM MM 2024): --loss term ``SSL``.

For the edge pixels of the HR image (``edge_mask``), the SR and HR images each give a
self-similarity graph over the pixel's search square; the loss compares the two graphs:

    D = patch_distances(image / rgb_range, mask, search, window)    # loss.ssl_cuda
    S = exp(-D / (C * window^2) / sigma), then S / (row sum + 1e-10) unless normalize=False
    loss = mean |S_sr - S_hr| + kl * kl_div(log S_sr, S_hr, 'mean')  (both clamped at 1e-10)

The HR graph carries no gradient. A batch without an edge pixel gives 0 (still connected
to the SR graph, so backward works). Training on the CPU in float32, the whole loss (both
images' distances, the graphs, the loss and its SR gradient) is one compiled pass
(``loss.ssl_cuda.ssl_loss_fused``), equal to the two-step form to float rounding.
"""
import torch
import torch.nn as nn

import utility
from loss.ssl_cuda import can_fuse, graph_loss, patch_distances, ssl_loss_fused

# Flags only this loss type reads: refused by option.parse_args when no term reads them.
FLAGS = ('ssl_search', 'ssl_window', 'ssl_sigma', 'ssl_threshold', 'ssl_stride', 'ssl_kl', 'ssl_no_norm')

# PIL's convert('L') weights (ITU-R 601-2 luma in 16-bit fixed point).
_LUMA = (19595, 38470, 7471)


def _reflect_101(x, dim):
    """x with one more row (dim=1) or column (dim=2) on each side, OpenCV's reflect-101
    border: the neighbour beyond the edge is the pixel next to the edge (the edge pixel itself
    when the axis has one pixel)."""
    n = x.shape[dim]
    first, last = min(1, n - 1), max(n - 2, 0)
    return torch.cat([x.narrow(dim, first, 1), x, x.narrow(dim, last, 1)], dim)


def _laplacian(hr, rgb_range):
    """The saturated Laplacian of ``edge_response`` as float32 [B, H, W] (whole numbers)."""
    if hr.dim() != 4 or hr.shape[1] not in (1, 3):
        raise ValueError(f'edge_mask: hr must be [B, 3 or 1, H, W], got {tuple(hr.shape)}')
    with torch.no_grad():
        # In float32, exactly: every value below is a whole number under 2^24, and the
        # division by 2^16 and the floor are exact, so this is the integer arithmetic.
        v = (hr.detach().float() * (255.0 / rgb_range)).clamp_(0, 255).round_()
        if hr.shape[1] == 3:
            gray = v[:, 0] * _LUMA[0] + v[:, 1] * _LUMA[1]
            gray += v[:, 2] * _LUMA[2]
            gray = gray.add_(32768).mul_(1 / 65536).floor_()
        else:
            gray = v[:, 0]
        p = _reflect_101(_reflect_101(gray, 1), 2)
        lap = p[:, :-2, 1:-1] + p[:, 2:, 1:-1]
        lap += p[:, 1:-1, :-2]
        lap += p[:, 1:-1, 2:]
        return lap.sub_(4 * gray).clamp_(0, 255)


def edge_response(hr, rgb_range=255):
    """Saturated Laplacian of an HR batch, the quantity ``edge_mask`` thresholds.

    hr: [B, C, H, W] with C = 3 (RGB) or 1 (gray), values in [0, rgb_range], any device.
    Steps: values -> 8 bit (x * 255 / rgb_range, clamped to [0, 255], rounded half to
    even like ``torch.round``: the grid of imageops.quantize; exact for 8-bit data);
    gray as PIL convert('L'): (R*19595 + G*38470 + B*7471 + 32768) >> 16; 3x3 Laplacian
    [[0,1,0],[1,-4,1],[0,1,0]] with reflect-101 borders, saturated to 0..255 like OpenCV's
    CV_8U output.
    Returns int32 [B, H, W] in 0..255 (no gradient).
    """
    return _laplacian(hr, rgb_range).to(torch.int32)


def edge_mask(hr, rgb_range=255, threshold=20, stride=1):
    """Edge pixels of an HR batch, as in the published SSL pipeline.

    hr: [B, C, H, W] with C = 3 (RGB) or 1 (gray), values in [0, rgb_range], any device.
    Returns bool [B, 1, H, W]: ``edge_response(hr, rgb_range)`` > threshold, and
    (row - col) % stride == 0.
    """
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f'edge_mask: stride must be a positive int, got {stride!r}')
    mask = _laplacian(hr, rgb_range) > threshold
    if stride > 1:
        h, w = mask.shape[-2:]
        r = torch.arange(h, device=hr.device)[:, None]
        col = torch.arange(w, device=hr.device)[None, :]
        mask &= (r - col) % stride == 0
    return mask[:, None]


class SSL(nn.Module):
    """Self-similarity loss between SR and HR batches [B, C, H, W] in [0, rgb_range].

    search, window: odd sizes of the search square and of the compared patches
    (window <= search; images need at least search // 2 + 1 pixels per side).
    sigma: bandwidth of exp(-mean squared patch difference / sigma), images in [0, 1].
    threshold, stride: edge mask (see ``edge_mask``). kl: weight of the KL part.
    normalize: row-normalise the graphs. Returns a scalar tensor.
    """

    def __init__(self, search=25, window=9, sigma=0.004, threshold=20, stride=1, kl=1.0,
                 normalize=True, rgb_range=255):
        super().__init__()
        for name, v in (('search', search), ('window', window)):
            if not isinstance(v, int) or v < 1 or v % 2 == 0:
                raise utility.UserError(f'SSL {name} must be a positive odd number, got {v!r}')
        if window > search:
            raise utility.UserError(f'SSL window {window} is larger than the search square '
                                    f'{search}; use --ssl_window <= --ssl_search')
        if not sigma > 0:
            raise utility.UserError(f'SSL sigma must be > 0, got {sigma}; set --ssl_sigma')
        if not isinstance(stride, int) or stride < 1:
            raise utility.UserError(f'SSL stride must be a positive int, got {stride!r}')
        self.search, self.window, self.sigma = search, window, float(sigma)
        self.threshold, self.stride, self.kl = threshold, stride, float(kl)
        self.normalize, self.rgb_range = bool(normalize), rgb_range

    def extra_repr(self):
        return (f'search={self.search}, window={self.window}, sigma={self.sigma}, '
                f'threshold={self.threshold}, stride={self.stride}, kl={self.kl}, '
                f'normalize={self.normalize}, rgb_range={self.rgb_range}')

    def forward(self, sr, hr):
        hr = hr.detach()
        mask = edge_mask(hr, self.rgb_range, self.threshold, self.stride)
        scale = 1.0 / self.rgb_range
        need = self.search // 2 + 1
        if min(sr.shape[-2:]) < need:
            raise utility.UserError(
                f'SSL needs images of at least search//2+1 = {need} pixels per side for search '
                f'{self.search}, got {sr.shape[-2]}x{sr.shape[-1]}; use a smaller --ssl_search '
                f'or a larger --patch_size')
        if (torch.is_grad_enabled() and sr.requires_grad and can_fuse(sr, hr, self.search)
                and bool(mask.any())):
            # Training on the CPU: one compiled pass for distances, graphs, loss and gradient.
            return ssl_loss_fused(sr, hr, mask, self.search, self.window, self.sigma,
                                  self.normalize, self.kl, scale)
        d_sr = patch_distances(sr * scale, mask, self.search, self.window)
        if d_sr.shape[0] == 0:
            return d_sr.sum()  # 0, connected to sr
        with torch.no_grad():
            d_hr = patch_distances(hr * scale, mask, self.search, self.window)
        return graph_loss(d_sr, d_hr, sr.shape[1], self.window, self.sigma, self.normalize,
                          self.kl)


def make_loss(args):
    """SSL from parsed args: --ssl_search/window/sigma/threshold/stride/kl/no_norm, --rgb_range."""
    return SSL(search=args.ssl_search, window=args.ssl_window, sigma=args.ssl_sigma,
               threshold=args.ssl_threshold, stride=args.ssl_stride, kl=args.ssl_kl,
               normalize=not args.ssl_no_norm, rgb_range=args.rgb_range)
