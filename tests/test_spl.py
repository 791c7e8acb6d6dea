"""SPL against a direct implementation of its definition, its flags, and its errors.

The reference below follows the definition literally, in float64 numpy: for every pixel, the
11x11 window of the zero-extended image, 2-D Gaussian weights (sigma 1.5) normalised over the
full window, weighted mean / variance / covariance, SSIM with C1 = (0.01 L)^2,
C2 = (0.03 L)^2; then w = max_val * exp(-((ssim + 1) / s)^2), s = alpha * age + beta, and the
mean of |sr * w - hr * w|.  No convolution, no separable filter.

Tolerances: the SPL value must match to 1e-4 relative (the requirement).  The float32 SSIM
map is within a few 1e-5 of the float64 one (variances of bright, flat 0..255 windows lose
digits), and w = exp(-((ssim + 1) / s)^2) magnifies that by 2 (ssim + 1) / s^2, so the
per-pixel maps are checked to 5e-5 (SSIM) and 1e-3 relative (weights, gradient).
"""
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import loss
import option
import utility
import ssim as ssim_maps
from loss.spl import SPL

SET5 = Path(__file__).resolve().parent.parent / 'dataset' / 'benchmark' / 'Set5' / 'HR'


def reference_ssim(hr, sr, data_range, size=11, sigma=1.5):
    """Per-pixel, per-channel SSIM of float64 arrays [B, C, H, W], zero-extended images."""
    r = size // 2
    offsets = np.arange(-r, r + 1)
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma ** 2))
    window /= window.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = np.empty_like(hr)
    batch, channels, height, width = hr.shape
    for b in range(batch):
        for c in range(channels):
            x = np.pad(hr[b, c], r)
            y = np.pad(sr[b, c], r)
            for i in range(height):
                for j in range(width):
                    px = x[i:i + size, j:j + size]
                    py = y[i:i + size, j:j + size]
                    mx, my = (window * px).sum(), (window * py).sum()
                    vx = (window * (px - mx) ** 2).sum()
                    vy = (window * (py - my) ** 2).sum()
                    cov = (window * (px - mx) * (py - my)).sum()
                    out[b, c, i, j] = ((2 * mx * my + c1) * (2 * cov + c2)) / (
                        (mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return out


def reference_spl(sr, hr, ssim, age, alpha, beta, max_val):
    s = alpha * age + beta
    w = max_val * np.exp(-((ssim + 1) / s) ** 2)
    return np.abs(sr * w - hr * w).mean(), w


@pytest.fixture(scope='module')
def images():
    """(hr, sr) float64 [2, 3, 20, 24] in [0, 255]: real Set5 crops and a degraded copy
    (noise everywhere, much more in one corner so that SSIM spans a wide range)."""
    crops = [iio.imread(p)[60:80, 50:74] for p in sorted(SET5.glob('*.png'))[:2]]
    hr = np.stack(crops).transpose(0, 3, 1, 2).astype(np.float64)
    rng = np.random.default_rng(0)
    sr = hr + rng.normal(0, 6, hr.shape)
    sr[:, :, :8, :8] += rng.normal(0, 60, (2, 3, 8, 8))
    return hr, sr


@pytest.fixture(scope='module')
def reference_maps(images):
    hr, sr = images
    return {255: reference_ssim(hr, sr, 255), 1: reference_ssim(hr / 255, sr / 255, 1)}


@pytest.mark.parametrize('rgb_range', [255, 1])
def test_ssim_map_matches_the_definition(images, reference_maps, rgb_range):
    hr, sr = (a / 255 * rgb_range for a in images)
    got = ssim_maps.ssim_map(torch.tensor(hr, dtype=torch.float32),
                         torch.tensor(sr, dtype=torch.float32), rgb_range, padding='same')
    np.testing.assert_allclose(got.numpy(), reference_maps[rgb_range], rtol=0, atol=5e-5)
    assert reference_maps[rgb_range].min() < 0.3 and reference_maps[rgb_range].max() > 0.9


@pytest.mark.parametrize('padding', ['same', 'valid'])
def test_ssim_map_gradient_and_its_no_grad_path(images, padding):
    """ssim_map builds its statistics in place when no gradient is asked for, out of place
    when one is: the two give the same map (float64 and float32, which are laid out
    differently), and the gradient is the numerical one."""
    hr, sr = (torch.tensor(a[:1, :2, :12, :13]) for a in images)     # float64
    x, y = hr.clone().requires_grad_(), sr.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: ssim_maps.ssim_map(a, b, 255, padding=padding), (x, y))
    with torch.no_grad():
        plain = ssim_maps.ssim_map(hr, sr, 255, padding=padding)
    assert torch.equal(ssim_maps.ssim_map(x, y, 255, padding=padding).detach(), plain)
    # float32 takes the other memory layout (channels-last); the two paths agree there too.
    x32, y32 = hr.float().requires_grad_(), sr.float()
    with torch.no_grad():
        plain32 = ssim_maps.ssim_map(x32, y32, 255, padding=padding)
    tracked = ssim_maps.ssim_map(x32, y32, 255, padding=padding)
    assert tracked.requires_grad and torch.equal(tracked.detach(), plain32)
    assert (plain32.double() - plain).abs().max() < 1e-5


@pytest.mark.parametrize('rgb_range', [255, 1])
@pytest.mark.parametrize('alpha, beta, max_val, age', [
    (1.0, 0.0, 2.0, 0.5), (1.0, 0.0, 2.0, 1.0), (1.0, 0.0, 2.0, 2.5), (1.0, 0.0, 2.0, 10.0),
    (0.3, 0.2, 1.5, 0.25), (0.3, 0.2, 1.5, 3.0), (0.0, 0.7, 2.0, 4.0),
])
def test_spl_matches_the_definition(images, reference_maps, rgb_range, alpha, beta, max_val,
                                    age):
    hr, sr = (a / 255 * rgb_range for a in images)
    expected, w_ref = reference_spl(sr, hr, reference_maps[rgb_range], age, alpha, beta,
                                    max_val)
    assert expected > 0
    spl = SPL(alpha=alpha, beta=beta, max_val=max_val, rgb_range=rgb_range)
    sr_t = torch.tensor(sr, dtype=torch.float32, requires_grad=True)
    hr_t = torch.tensor(hr, dtype=torch.float32)
    value = spl(sr_t, hr_t, age)
    assert value.item() == pytest.approx(expected, rel=1e-4)
    np.testing.assert_allclose(spl.weights(sr_t, hr_t, age).numpy(), w_ref, rtol=1e-3,
                               atol=1e-6 * max_val)
    # The weights are constants for back-propagation: d value / d sr = w * sign(sr - hr) / N.
    value.backward()
    expected_grad = w_ref * np.sign(sr - hr) / sr.size
    np.testing.assert_allclose(sr_t.grad.numpy(), expected_grad, rtol=1e-3,
                               atol=1e-6 * max_val / sr.size)


def test_ssim_runs_in_float32_under_autocast(images):
    hr, sr = (torch.tensor(a, dtype=torch.float32) for a in images)
    spl = SPL()
    plain = spl(sr, hr, 1.0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = spl(sr, hr, 1.0)
    assert mixed.item() == pytest.approx(plain.item(), rel=1e-6)


def test_sigma_must_be_positive():
    spl = SPL(alpha=1.0, beta=-1.0)
    hr = torch.full((1, 3, 16, 16), 100.0)
    with pytest.raises(ValueError, match='must be > 0'):
        spl(hr + 1, hr, 0.5)
    with pytest.raises(ValueError, match='must be > 0'):
        SPL()(hr + 1, hr, float('nan'))
    assert SPL(alpha=1.0, beta=-1.0)(hr + 1, hr, 2.0) > 0


@pytest.mark.parametrize('kwargs, fragment', [
    (dict(alpha=0.0, beta=0.0), 'never > 0'),
    (dict(alpha=-1.0, beta=0.0), 'never > 0'),
    (dict(max_val=0.0), 'max_val'),
    (dict(alpha=float('inf')), 'finite'),
])
def test_impossible_settings_are_refused_at_construction(kwargs, fragment):
    with pytest.raises(utility.UserError, match=fragment):
        SPL(**kwargs)


def _args(*flags):
    return option.parse_args(['--loss', '1*L1+1*SPL', '--epochs', '10', *flags])


def test_flags_and_their_pspl_aliases_reach_the_term():
    spl = loss.Loss(_args('--splalpha', '0.3', '--splbeta', '0.1', '--splval', '1.5',
                          '--rgb_range', '1')).terms['SPL']
    assert (spl.alpha, spl.beta, spl.max_val, spl.rgb_range) == (0.3, 0.1, 1.5, 1.0)
    spl = loss.Loss(_args('--spl_alpha', '2', '--spl_beta', '0', '--spl_max', '3')).terms['SPL']
    assert (spl.alpha, spl.beta, spl.max_val, spl.rgb_range) == (2.0, 0.0, 3.0, 255.0)


@pytest.mark.parametrize('flags', [
    ['--spl_alpha', '0', '--spl_beta', '0'],
    ['--spl_alpha', '1', '--spl_beta', '-0.5'],    # sigma <= 0 during the first half epoch
    ['--spl_alpha', '-0.1', '--spl_beta', '0.5'],  # sigma <= 0 from epoch 5 of 10
])
def test_a_schedule_that_reaches_sigma_0_during_the_run_is_refused(flags):
    with pytest.raises(utility.UserError, match='--spl_alpha') as info:
        loss.Loss(_args(*flags))
    assert '\n' not in str(info.value)
