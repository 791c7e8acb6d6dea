"""SPL: PSPL's pixel-level self-paced L1 loss, with SSIM constants for the data range.

Each pixel and channel gets the weight

    w = max_val * exp(-((ssim + 1) / s) ** 2),   s = alpha * age + beta,

where ssim is the per-pixel SSIM map of (hr, sr) (see ``ssim.ssim_map`` with padding 'same': 11x11 Gaussian
window, sigma 1.5, zero 'same' padding, C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = rgb_range) and
age is the training progress in epochs.  The weight is a constant for back-propagation
(detached).  The loss is L1(sr * w, hr * w), a mean over all elements.

Early on (small s) only badly reconstructed pixels (ssim near -1) get weight; as s grows
every weight tends to max_val and the loss to max_val * L1.
"""
import math

import torch
import torch.nn as nn

import ssim as ssim_maps
import utility

# Flags only this loss type reads: refused by option.parse_args when no term reads them.
FLAGS = ('spl_alpha', 'spl_beta', 'spl_max')


class SPL(nn.Module):
    """Self-paced SSIM-weighted L1 loss.

    alpha, beta: schedule of the weight bandwidth s = alpha * age + beta (s must stay > 0).
    max_val: largest pixel weight (> 0).
    rgb_range: largest pixel value L of sr and hr (255 for 8-bit data, 1 for [0, 1]).
    """

    NEEDS = ('age',)

    def __init__(self, alpha=1.0, beta=0.0, max_val=2.0, rgb_range=255):
        super().__init__()
        for name, value in (('alpha', alpha), ('beta', beta), ('max_val', max_val),
                            ('rgb_range', rgb_range)):
            if not math.isfinite(value):
                raise utility.UserError(f'SPL {name} must be a finite number, got {value!r}')
        if max_val <= 0:
            raise utility.UserError(f'SPL max_val (--spl_max) must be > 0, got {max_val!r}')
        if rgb_range <= 0:
            raise utility.UserError(f'SPL rgb_range must be > 0, got {rgb_range!r}')
        if alpha <= 0 and beta <= 0:
            raise utility.UserError(
                f'SPL sigma = alpha * age + beta is never > 0 with alpha={alpha!r}, '
                f'beta={beta!r}; use --spl_alpha > 0 or --spl_beta > 0')
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.max_val = float(max_val)
        self.rgb_range = float(rgb_range)

    def sigma(self, age):
        """s = alpha * age + beta; ValueError when it is not > 0 (or age is not finite)."""
        age = float(age)
        s = self.alpha * age + self.beta
        if not (math.isfinite(age) and s > 0):
            raise ValueError(f'SPL sigma = alpha * age + beta = {self.alpha!r} * {age!r} + '
                             f'{self.beta!r} = {s!r} must be > 0 (age = training progress in '
                             f'epochs, > 0 once training has started)')
        return s

    def weights(self, sr, hr, age):
        """Pixel weights w [B, C, H, W] (float32, no gradient) for sr, hr [B, C, H, W]."""
        s = self.sigma(age)
        # float32 and no autocast: SSIM on 0..255 data squares values (x^2 up to 65025),
        # which half precision neither holds accurately nor, for float16, reliably at all.
        with torch.no_grad(), torch.autocast(sr.device.type, enabled=False):
            ssim = ssim_maps.ssim_map(hr.detach().float(), sr.detach().float(), self.rgb_range,
                                      padding='same')
            # In place: this runs every training step and the map is a temporary.
            return ssim.add_(1).div_(s).square_().neg_().exp_().mul_(self.max_val)

    def forward(self, sr, hr, age):
        """Scalar SPL value for sr, hr [B, C, H, W] in [0, rgb_range]; age in epochs (> 0)."""
        w = self.weights(sr, hr, age)
        # L1(sr * w, hr * w) with w >= 0 equals mean(w * |sr - hr|); one product fewer.
        return (w * (sr - hr).abs()).mean()


def make_loss(args):
    """SPL from --spl_alpha, --spl_beta, --spl_max and --rgb_range.

    Refuses (UserError) a schedule whose s = alpha * age + beta is not > 0 for every age in
    (0, --epochs], the ages a run reaches.
    """
    alpha, beta = args.spl_alpha, args.spl_beta
    epochs = getattr(args, 'epochs', None)
    start_ok = beta > 0 or (beta == 0 and alpha > 0)   # s as age -> 0+
    end_ok = epochs is None or alpha * epochs + beta > 0
    if not (start_ok and end_ok):
        at_end = '' if epochs is None else f', {alpha * epochs + beta:g} at age {epochs}'
        raise utility.UserError(
            f'--spl_alpha {alpha:g} --spl_beta {beta:g} make SPL sigma = alpha * age + beta '
            f'<= 0 during training ({beta:g} at the start{at_end}); choose --spl_beta >= 0 '
            f'and --spl_alpha so that sigma stays > 0 up to --epochs (e.g. --spl_alpha 1 '
            f'--spl_beta 0)')
    return SPL(alpha=alpha, beta=beta, max_val=args.spl_max, rgb_range=args.rgb_range)
