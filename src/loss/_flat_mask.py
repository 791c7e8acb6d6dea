"""BebyGAN's flat-region mask (helper): pixels whose 11x11 neighbourhood is nearly uniform.

Luma ``0.2989 R + 0.587 G + 0.114 B``, reflect-padded by 5, the standard deviation
(unbiased, over the 121 values) of every 11x11 window; a pixel is flat where that is
below 0.025 (images in [0, 1]).  The region-aware adversarial loss shows the
discriminator only the rest, ``x * (1 - mask)``.  Computed image by image, as the official
``get_flat_mask`` does for the whole batch at once (same operations, bounded memory).
"""
import torch
import torch.nn.functional as F

KERNEL = 11
STD_THRESHOLD = 0.025
LUMA = (0.2989, 0.587, 0.114)


@torch.no_grad()
def flat_mask(img, value_range=1.0, kernel=KERNEL, threshold=STD_THRESHOLD):
    """img [B, 3, H, W] in [0, value_range] -> float mask [B, 1, H, W], 1 where flat."""
    r, g, b = img.unbind(1)
    luma = (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)
    pad = kernel // 2
    out = []
    for one in luma.split(1):
        h, w = one.shape[-2:]
        windows = F.unfold(F.pad(one, (pad,) * 4, mode='reflect'), kernel)
        out.append(windows.std(dim=1, keepdim=True).view(1, 1, h, w))
    return torch.cat(out).lt(threshold * value_range).to(img.dtype)
