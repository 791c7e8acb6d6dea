"""Pictures of what a loss does during training (``--save_maps``).

``spl_figure``: for one image, the SR output, its per-pixel SSIM against HR (the map SPL
uses), the SPL weight map at the current age, and PSPL's weight curve
``w = spl_max * exp(-((ssim + 1) / s)^2)`` against SSIM at that age with the image's SSIM
values as a histogram.  The trainer writes it as ``maps/spl_<epoch>.png`` after each
evaluation.
"""
import numpy as np
import torch

import figures
import ssim as ssim_maps


def spl_maps(spl, sr, hr, age):
    """(ssim, weights): per-pixel SSIM map and SPL weights [C, H, W] (float64 numpy) for one
    image sr, hr [1, C, H, W] in [0, rgb_range]; ``spl`` is the ``loss.spl.SPL`` term."""
    with torch.no_grad():
        s = ssim_maps.ssim_map(hr.float(), sr.float(), spl.rgb_range, padding='same')
        w = spl.weights(sr, hr, age)
    return s[0].double().cpu().numpy(), w[0].double().cpu().numpy()


def spl_curve(spl, age, ssim):
    """PSPL's weight for SSIM values ``ssim`` (numpy) at ``age``: spl_max exp(-((ssim+1)/s)^2)."""
    s = spl.sigma(age)
    return spl.max_val * np.exp(-((np.asarray(ssim, dtype=np.float64) + 1) / s) ** 2)


def spl_figure(spl, sr, hr, age, title):
    """Figure of SPL on one image (sr, hr [1, C, H, W] in [0, rgb_range]) at ``age``.

    The maps show the mean over the colour channels (SPL weights each channel on its own).
    """
    ssim, weights = spl_maps(spl, sr, hr, age)
    image = (sr[0].float().clamp(0, spl.rgb_range) / spl.rgb_range).permute(1, 2, 0)
    image = image.cpu().numpy()
    if image.shape[2] == 1:
        image = image[:, :, 0]
    fig = figures.new_figure(figsize=(17, 4.4))
    grid = fig.add_gridspec(1, 4, width_ratios=[1, 1, 1, 1.15])
    fig.suptitle(title, fontsize=10)
    ax = fig.add_subplot(grid[0])
    ax.imshow(image, cmap='gray' if image.ndim == 2 else None, interpolation='nearest')
    ax.set_title('SR', fontsize=9)
    ax.set_axis_off()
    ax = fig.add_subplot(grid[1])
    im = ax.imshow(ssim.mean(0), cmap='viridis', vmin=-1, vmax=1, interpolation='nearest')
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    ax.set_title('SSIM(HR, SR) per pixel (channel mean)', fontsize=9)
    ax.set_axis_off()
    ax = fig.add_subplot(grid[2])
    # Colours from 0 to the map's largest weight: early in training every weight is far
    # below spl_max, and a 0..spl_max scale would show a black square.
    shown = weights.mean(0)
    im = ax.imshow(shown, cmap='magma', vmin=0, vmax=max(float(shown.max()), 1e-12),
                   interpolation='nearest')
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    ax.set_title(f'SPL weight (channel mean)\nmean {weights.mean():.3g}, largest '
                 f'{float(shown.max()):.3g}; spl_max {spl.max_val:g}', fontsize=9)
    ax.set_axis_off()
    ax = fig.add_subplot(grid[3])
    xs = np.linspace(-1, 1, 401)
    ax.plot(xs, spl_curve(spl, age, xs), color='C3',
            label=f'w = {spl.max_val:g} exp(-((ssim+1)/{spl.sigma(age):.3g})^2)')
    ax.set_xlim(-1, 1)
    ax.set_ylim(0, spl.max_val * 1.05)
    ax.set_xlabel('SSIM')
    ax.set_ylabel('weight')
    ax.grid(True)
    ax.legend(fontsize=8, loc='upper left')
    hist = ax.twinx()
    hist.hist(ssim.ravel(), bins=100, range=(-1, 1), color='C0', alpha=0.35)
    hist.set_yscale('log')
    hist.set_ylabel('pixels of this image (log)', fontsize=8)
    ax.set_title(f'PSPL weight vs SSIM at age {age:g}', fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def save_spl_map(exp, spl, sr, hr, age, name, step):
    """``experiment/<save>/maps/spl_<step>.png``: ``spl_figure`` of the SPL term ``spl`` on
    one image (``name``, e.g. 'Set5/baby (x2)'), sr and hr [1, C, H, W], after epoch ``step``."""
    fig = spl_figure(spl, sr, hr, age,
                     f'SPL on {name} after epoch {step}: age '
                     f'{age:g}, s = {spl.alpha:g} * age + {spl.beta:g} = '
                     f'{spl.sigma(age):.4g}, spl_max {spl.max_val:g}')
    figures.save(fig, exp.path('maps', f'spl_{step}.png'))
