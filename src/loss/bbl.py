"""Loss type BBL: BebyGAN's best-buddy loss (Li et al., "Best-Buddy GANs", 2021).

Each 3x3 patch of sr (stride 3, no padding) is compared, by L1, with its best buddy: the
candidate patch c that minimises ``alpha * |p_sr - c|^2 + beta * |p_hr - c|^2`` (squared L2
distances), where p_hr is the HR patch at the same place and the candidates are every
3x3 patch (stride 3) of the HR image and of its 1/2 and 1/4 bicubic downsamplings
(PyTorch's bicubic, align_corners=False, no antialiasing, as the official code).  alpha =
beta = 1.  The buddies come from hr and carry no gradient.  ``forward(sr, hr)``: [B, C, H,
W] -> scalar, the mean absolute difference over all patches and their elements (in the
units of the images, [0, rgb_range]).

Memory: a 192x192 image has 4096 patches and 5376 candidates; the official code builds the
whole [B, 4096, 5376] score matrix twice (over 1.3 GB at batch 16).  Here each image's
patches go through in chunks of ``chunk`` rows (one [chunk, 5376] score block at a time),
the same distances by the same formula, so memory stays bounded whatever the batch.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

KSIZE = STRIDE = 3
CANDIDATE_SCALES = (0.5, 0.25)


def patches(x, ksize=KSIZE, stride=STRIDE):
    """[B, C, H, W] -> [B, N, C*k*k]: the k x k patches at stride ``stride`` (F.unfold order)."""
    return F.unfold(x, kernel_size=ksize, stride=stride).transpose(1, 2)


def squared_distances(x, y):
    """[N, d], [M, d] -> [N, M] squared L2 distances by |x|^2 + |y|^2 - 2 x.y, clamped at 0
    (the official formula, so that the best buddies are the same)."""
    dist = (x * x).sum(1, keepdim=True) + (y * y).sum(1).unsqueeze(0) - 2.0 * x @ y.t()
    return dist.clamp_(min=0.0)


class BestBuddyLoss(nn.Module):
    """See the module docstring; ``chunk``: patches scored at once (memory bound)."""

    def __init__(self, alpha=1.0, beta=1.0, chunk=1024):
        super().__init__()
        self.alpha, self.beta, self.chunk = alpha, beta, chunk

    @torch.no_grad()
    def buddies(self, sr, hr):
        """[B, N, d] best-buddy patches of sr's patches (from hr and its downsamplings)."""
        hr = hr.detach()
        p_sr, p_hr = patches(sr.detach()), patches(hr)
        candidates = torch.cat([p_hr] + [
            patches(F.interpolate(hr, scale_factor=s, mode='bicubic', align_corners=False))
            for s in CANDIDATE_SCALES], 1)
        out = torch.empty_like(p_sr)
        for b in range(sr.shape[0]):
            cand = candidates[b]
            for start in range(0, p_sr.shape[1], self.chunk):
                rows = slice(start, start + self.chunk)
                score = self.alpha * squared_distances(p_sr[b, rows], cand)
                score += self.beta * squared_distances(p_hr[b, rows], cand)
                out[b, rows] = cand[score.argmin(1)]
        return out

    def forward(self, sr, hr):
        return F.l1_loss(patches(sr), self.buddies(sr, hr))


def make_loss(args):
    return BestBuddyLoss()
