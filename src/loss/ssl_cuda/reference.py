"""Pure-PyTorch reading of the SSL definitions, the oracle of the tests (slow is fine).

It shares no code with the compiled op: every term is indexed straight from the
definition in ``loss.ssl_cuda`` (patch distances) and ``loss.ssl`` (graph and loss).
Use float64 inputs for reference values; gradients come from autograd.
"""
import torch
import torch.nn.functional as F


def patch_distances_reference(image, mask, search=25, window=9):
    """D[N, search*search] for image [B, C, H, W] and mask [B, 1, H, W] (bool or 0/1)."""
    p, r = search // 2, window // 2
    a = F.pad(image, (p, p, p, p), mode='reflect')
    pos = torch.nonzero(mask[:, 0] != 0)
    b, y, x = pos[:, 0], pos[:, 1] + p, pos[:, 2] + p  # centres in padded coordinates
    offsets = torch.arange(-p, p + 1, device=image.device)
    # Each masked pixel's search square, q[n, c, p + dy, p + dx] = A[m + d].
    q = a[b[:, None, None], :, y[:, None, None] + offsets[None, :, None],
          x[:, None, None] + offsets[None, None, :]].permute(0, 3, 1, 2)
    # Room for d + k outside the square (those terms are multiplied by in() = 0 below).
    q_out = F.pad(q, (r, r, r, r))
    d = image.new_zeros(pos.shape[0], search, search)
    for ky in range(-r, r + 1):
        for kx in range(-r, r + 1):
            centre = q[:, :, p + ky, p + kx]  # A[m + k], [N, C]
            other = q_out[:, :, r + ky:r + ky + search, r + kx:r + kx + search]  # A[m + d + k]
            inside = (((offsets + ky).abs() <= p)[:, None]
                      & ((offsets + kx).abs() <= p)[None, :]).to(image.dtype)  # in(d + k)
            diff = centre[:, :, None, None] - inside * other
            d = d + (diff * diff).sum(1)
    return d.reshape(pos.shape[0], search * search)


def graph_reference(d, channels, window, sigma, normalize):
    """S = exp(-D / (C * window^2) / sigma), row-normalised by (row sum + 1e-10)."""
    s = torch.exp(-d / (channels * window * window) / sigma)
    if normalize:
        s = s / (s.sum(-1, keepdim=True) + 1e-10)
    return s


def ssl_loss_reference(sr, hr, mask, search=25, window=9, sigma=0.004, kl=1.0,
                       normalize=True, rgb_range=255):
    """mean |S_sr - S_hr| + kl * kl_div(log S_sr, S_hr) (clamped at 1e-10); HR detached."""
    c = sr.shape[1]
    s_sr = graph_reference(patch_distances_reference(sr / rgb_range, mask, search, window),
                           c, window, sigma, normalize)
    s_hr = graph_reference(patch_distances_reference(hr.detach() / rgb_range, mask, search,
                                                     window), c, window, sigma, normalize)
    if s_sr.numel() == 0:
        return sr.sum() * 0
    l1 = (s_sr - s_hr).abs().mean()
    # reduction 'none' then mean() equals 'mean' without its deprecation warning
    kld = F.kl_div(s_sr.clamp_min(1e-10).log(), s_hr.clamp_min(1e-10), reduction='none').mean()
    return l1 + kl * kld
