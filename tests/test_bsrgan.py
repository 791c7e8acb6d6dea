"""The BSRGAN degradation (src/degradation/bsrgan.py): each operation against its definition,
the draws against the official probabilities, the pipeline's determinism; and, with
``SSL_OFFICIAL`` set (see tests/reference/bsrgan_official.py), against the official code."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage, stats
from scipy.interpolate import RegularGridInterpolator

import degradation
import imresize
from degradation import bsrgan
from degradation._second_order import key_rng

sys.path.insert(0, str(Path(__file__).parent / 'reference'))
import bsrgan_official  # noqa: E402


FIXTURE = Path(__file__).parent / 'data' / 'bsrgan_official.pt'   # make_bsrgan_fixtures.py


@pytest.fixture(scope='module')
def fixture():
    return torch.load(FIXTURE, weights_only=True)


def test_kernels_and_halving_match_the_official_fixture(fixture):
    for size, sigma, k in fixture['fspecial']:
        assert np.allclose(bsrgan.fspecial_gaussian(size, sigma), k.numpy(), rtol=1e-12, atol=0)
    for size, theta, l1, l2, k in fixture['anisotropic']:
        assert np.allclose(bsrgan.anisotropic_gaussian(size, theta, l1, l2), k.numpy(),
                           rtol=1e-9, atol=1e-15)
    for size, sigma, sf, k in fixture['shift_pixel']:
        ours = bsrgan.shift_kernel(bsrgan.fspecial_gaussian(size, sigma), sf)
        assert np.allclose(ours, k.numpy(), atol=1e-15)
    img, want = fixture['imresize_np']
    ours = imresize.imresize(img.permute(2, 0, 1), 0.5).permute(1, 2, 0)
    assert torch.allclose(ours, want, atol=1e-5)


@pytest.fixture(scope='module')
def official():
    o = bsrgan_official.load()
    if o is None:
        pytest.skip('SSL_OFFICIAL (the SSL snapshot) or cv2 is absent')
    return o


def _cv2():
    return pytest.importorskip('cv2')


# ----------------------------------------------------------------------------- kernels
@pytest.mark.parametrize('size,sigma', [(3, 0.4), (7, 1.3), (9, 2.0), (5, 0.05)])
def test_fspecial_gaussian_is_matlabs(size, sigma):
    r = (size - 1) / 2
    want = np.array([[math.exp(-((x - r) ** 2 + (y - r) ** 2) / (2 * sigma ** 2))
                      for x in range(size)] for y in range(size)])
    want[want < np.finfo(float).eps * want.max()] = 0       # fspecial's cut-off
    want /= want.sum()
    assert np.allclose(bsrgan.fspecial_gaussian(size, sigma), want, rtol=1e-12, atol=0)


@pytest.mark.parametrize('theta,l1,l2', [(0.3, 1.2, 0.1), (2.9, 0.05, 1.1), (1.0, 0.7, 0.7)])
def test_anisotropic_gaussian_is_the_normal_density(theta, l1, l2):
    """KAIR: cov V diag(l1, l2) V^-1 with V = [[c, s], [s, -c]], pdf on the centred grid."""
    c, s = math.cos(theta), math.sin(theta)
    v = np.array([[c, s], [s, -c]])
    cov = v @ np.diag([l1, l2]) @ np.linalg.inv(v)
    size = 7
    want = np.array([[stats.multivariate_normal.pdf([x - 3, y - 3], mean=[0, 0], cov=cov)
                      for x in range(size)] for y in range(size)])
    want /= want.sum()
    assert np.allclose(bsrgan.anisotropic_gaussian(size, theta, l1, l2), want, rtol=1e-9,
                       atol=1e-15)


def test_bilinear_on_grid_is_linear_interpolation():
    """interp2d's replacement: the bilinear formula, and scipy's RegularGridInterpolator."""
    rng = np.random.default_rng(0)
    z = rng.random((5, 7))
    xs = np.array([0.0, 0.5, 1.25, 3.0, 5.9, 6.0])
    ys = np.array([0.0, 0.3, 2.5, 4.0])
    out = bsrgan.bilinear_on_grid(z, xs, ys)
    assert out.shape == (4, 6)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            x0, y0 = min(int(x), 5), min(int(y), 3)
            fx, fy = x - x0, y - y0
            want = ((1 - fx) * (1 - fy) * z[y0, x0] + fx * (1 - fy) * z[y0, x0 + 1]
                    + (1 - fx) * fy * z[y0 + 1, x0] + fx * fy * z[y0 + 1, x0 + 1])
            assert out[i, j] == pytest.approx(want, abs=1e-14)
    f = RegularGridInterpolator((np.arange(5.0), np.arange(7.0)), z)
    yy, xx = np.meshgrid(ys, xs, indexing='ij')
    assert np.allclose(out, f(np.stack([yy, xx], -1)), atol=1e-14)


@pytest.mark.parametrize('sf', [2, 4])
def test_shift_kernel_samples_at_the_shifted_points(sf):
    k = bsrgan.fspecial_gaussian(7, 1.1)
    out = bsrgan.shift_kernel(k, sf)
    shift = (sf - 1) / 2
    for i in range(7):
        for j in range(7):
            y, x = min(i + shift, 6), min(j + shift, 6)
            y0, x0 = min(int(y), 5), min(int(x), 5)
            fy, fx = y - y0, x - x0
            want = ((1 - fy) * ((1 - fx) * k[y0, x0] + fx * k[y0, x0 + 1])
                    + fy * ((1 - fx) * k[y0 + 1, x0] + fx * k[y0 + 1, x0 + 1]))
            assert out[i, j] == pytest.approx(want, abs=1e-15)
    # the mass moves up-left by the shift (away from the clipped border)
    kk = bsrgan.shifted_kernel(7, 0.8, sf)
    grid = np.arange(7) - 3
    assert kk.sum() == pytest.approx(1)
    assert (kk.sum(1) * grid).sum() == pytest.approx(-shift, abs=0.05)


def test_shift_kernel_matches_official_shift_pixel(official):
    for sf in (2, 4):
        for size, sigma in ((3, 0.3), (5, 0.9), (9, 1.0)):
            k = bsrgan.fspecial_gaussian(size, sigma)
            want = official.blindsr.shift_pixel(k.copy(), sf)
            assert np.allclose(bsrgan.shift_kernel(k, sf), want, atol=1e-15)


# ----------------------------------------------------------------------------- image ops
@pytest.mark.parametrize('shape,size', [((13, 17), 3), ((9, 11), 7), ((4, 6), 9)])
def test_convolve_mirror_is_scipy_ndimage_convolve(shape, size):
    rng = np.random.default_rng(1)
    img = rng.random((3, *shape))
    k = rng.random((size, size))                     # not symmetric: the flip matters
    ours = bsrgan.convolve_mirror(torch.from_numpy(img)[None], k)[0].numpy()
    want = ndimage.convolve(img.transpose(1, 2, 0), k[..., None], mode='mirror')
    assert np.allclose(ours, want.transpose(2, 0, 1), atol=1e-12)


@pytest.mark.parametrize('n,m', [(16, 8), (20, 7), (64, 17), (10, 10), (230, 64)])
def test_area_resize_is_the_cell_average(n, m):
    """Each output is the mean of the input over its cell [d n/m, (d+1) n/m)."""
    x = torch.rand(1, 1, 5, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    out = bsrgan.resize_cv2(x, (5, m), 'area')[0, 0]
    s = n / m
    for d in range(m):
        lo, hi = d * s, (d + 1) * s
        total = sum(x[0, 0, :, j] * max(0.0, min(hi, j + 1) - max(lo, j)) for j in range(n))
        assert torch.allclose(out[:, d], total / s, atol=1e-6)


@pytest.mark.parametrize('interp', bsrgan.INTERPOLATIONS)
@pytest.mark.parametrize('size', [(64, 48), (55, 41), (16, 16), (32, 31)])
def test_resize_matches_opencv(interp, size):
    cv2 = _cv2()
    rng = np.random.default_rng(2)
    img = rng.random((64, 72, 3)).astype(np.float32)
    code = {'linear': cv2.INTER_LINEAR, 'cubic': cv2.INTER_CUBIC, 'area': cv2.INTER_AREA}
    want = cv2.resize(img, (size[1], size[0]), interpolation=code[interp])
    ours = bsrgan.resize_cv2(torch.from_numpy(img.transpose(2, 0, 1))[None], size, interp)
    assert np.abs(ours[0].numpy().transpose(1, 2, 0) - want).max() < 2e-5


def test_correlated_noise_matrix_gives_numpys_covariance():
    rng = np.random.default_rng(3)
    for _ in range(20):
        u = __import__('scipy').linalg.orth(rng.random((3, 3)))
        cov = np.abs((12 / 255) ** 2 * (u.T @ np.diag(rng.random(3)) @ u))
        a = bsrgan.correlated_noise_matrix(cov)
        w, v = np.linalg.eigh(cov)
        assert np.allclose(a.T @ a, v @ np.diag(np.abs(w)) @ v.T, atol=1e-15)
        if w.min() >= 0:
            assert np.allclose(a.T @ a, cov, atol=1e-15)


def test_gaussian_noise_modes_have_the_drawn_statistics():
    img = torch.full((1, 3, 256, 256), 0.5)
    g = torch.Generator().manual_seed(0)
    color = bsrgan.gaussian_noise(img, {'level': 10, 'mode': 'color'}, g)[0] - 0.5
    assert color.std().item() == pytest.approx(10 / 255, rel=0.02)
    assert abs(np.corrcoef(color[0].flatten(), color[1].flatten())[0, 1]) < 0.02
    gray = bsrgan.gaussian_noise(img, {'level': 10, 'mode': 'gray'}, g)[0] - 0.5
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    cov = [[4e-4, 3e-4, 1e-4], [3e-4, 5e-4, 2e-4], [1e-4, 2e-4, 3e-4]]
    corr = bsrgan.gaussian_noise(img, {'level': 10, 'mode': 'correlated', 'cov': cov}, g)[0]
    emp = np.cov((corr - 0.5).reshape(3, -1).numpy())
    assert np.allclose(emp, cov, atol=2e-5)


def test_matlab_halving_matches_official_imresize_np(official):
    rng = np.random.default_rng(4)
    img = rng.random((40, 36, 3)).astype(np.float32)
    want = official.util.imresize_np(img, 1 / 2, True)
    ours = imresize.imresize(torch.from_numpy(img.transpose(2, 0, 1)), 0.5)
    assert np.abs(ours.numpy().transpose(1, 2, 0) - want).max() < 1e-5


# ----------------------------------------------------------------------------- draws
def test_draws_follow_the_official_probabilities_and_ranges():
    n = 4000
    draws = [bsrgan.draw(key_rng((9, i), 0), bsrgan.PARAMS, 4, 64, 64) for i in range(n)]
    ds1 = [d['downsample1'] for d in draws]
    assert np.mean([d is not None for d in ds1]) == pytest.approx(0.25, abs=0.025)
    assert np.mean([d['method'] == 'cv2' for d in ds1 if d]) == pytest.approx(0.5, abs=0.05)
    assert all(d['order'].index(2) < d['order'].index(3) for d in draws)
    assert sorted(draws[0]['order']) == list(range(7))
    firsts = np.bincount([d['order'][0] for d in draws], minlength=7) / n
    # position 0 holds downsample3 never; ops 0, 1, 4, 5, 6 1/7 each, downsample2 2/7
    assert firsts[3] == 0 and firsts[2] == pytest.approx(2 / 7, abs=0.03)
    blurs = [d[b] for d in draws for b in ('blur1', 'blur2')]
    assert np.mean([b['type'] == 'aniso' for b in blurs]) == pytest.approx(0.3, abs=0.02)
    assert {b['size'] for b in blurs} == {3, 5, 7, 9}
    for d in draws:
        wd = 0.2 + 0.2 * d['sf']
        for b in (d['blur1'], d['blur2']):
            for key in ('sigma', 'l1', 'l2'):
                assert 0 <= b.get(key, 0) <= wd
        d2 = d['downsample2']
        if d2['type'] == 'resize':
            assert 0.85 <= d2['factor'] <= 1
        else:
            assert 0.1 <= d2['sigma'] <= 0.25 * d['sf'] and d2['size'] in (3, 5, 7, 9)
        assert d['downsample3']['size'] == [64 // 4, 64 // 4]
        assert 1 <= d['noise']['level'] <= 12
        assert 75 <= d['jpeg_final'] <= 95
    assert np.mean([d['downsample2']['type'] == 'resize' for d in draws]) == pytest.approx(
        0.75, abs=0.025)
    modes = [d['noise']['mode'] for d in draws]
    for mode, p in (('color', 0.4), ('gray', 0.4), ('correlated', 0.2)):
        assert modes.count(mode) / n == pytest.approx(p, abs=0.025)
    assert np.mean([d['jpeg'] is not None for d in draws]) == pytest.approx(0.9, abs=0.02)
    levels = np.bincount([d['noise']['level'] for d in draws], minlength=13)[1:]
    assert levels.min() > 0.6 * n / 12                  # all of 1..12, uniform


def test_generate_ranges():
    draws = [bsrgan.draw(key_rng((8, i), 0), bsrgan.GENERATE, 4, 64, 64) for i in range(800)]
    assert {d['blur1']['size'] for d in draws} == {3, 5, 7, 9, 11}
    assert max(d['noise']['level'] for d in draws) == 10
    assert min(d['jpeg_final'] for d in draws) >= 85
    f = [d['downsample2']['factor'] for d in draws if d['downsample2']['type'] == 'resize']
    assert 0.75 <= min(f) < 0.8 and max(f) <= 1.0


# ----------------------------------------------------------------------------- pipeline
def test_pipeline_shape_grid_and_determinism():
    deg = degradation.make('bsrgan', 4)
    hr = torch.rand(4, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    keys = degradation.train_keys(1, 1, 0, 0, range(4))
    state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    a, pa = deg(hr, *keys)
    assert torch.equal(state, torch.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])
    assert a.shape == (4, 3, 16, 12) and a.min() >= 0 and a.max() <= 1
    assert torch.equal((a * 255).round() / 255, a)
    b, pb = deg(hr, *keys)
    assert torch.equal(a, b) and pa == pb
    c, pc = deg(hr, *degradation.train_keys(2, 1, 0, 0, range(4)))
    assert pc != pa and not torch.equal(a, c)
    # each sample depends on its own key only
    d, _ = deg(hr[1:2], keys[0], keys[1][1:2])
    assert torch.equal(d[0], a[1])
    with pytest.raises(ValueError, match='multiple of the scale'):
        deg(hr[:, :, :62], *keys)


def test_one_and_two_threads_give_the_same_lr():
    deg = degradation.make('bsrgan', 4)
    hr = torch.rand(6, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    keys = degradation.train_keys(0, 1, 0, 0, range(6))
    before = torch.get_num_threads()
    try:
        out = []
        for n in (1, 2):
            torch.set_num_threads(n)
            out.append(deg(hr, *keys)[0])
    finally:
        torch.set_num_threads(before)
    assert torch.equal(out[0], out[1])


def test_official_pipeline_runs_on_the_same_input(official):
    """The official function on one image: same size, similar strength as ours (loose: one
    draw each; bench/bsrgan_distribution.py compares the distributions)."""
    import random
    rng = np.random.default_rng(6)
    img = rng.random((64, 64, 3)).astype(np.float32)
    random.seed(0)
    np.random.seed(0)
    lq, hq = official.blindsr.degradation_bsrgan(img, 4, lq_patchsize=16)
    ours, _ = degradation.make('bsrgan', 4)(torch.from_numpy(img.transpose(2, 0, 1))[None],
                                           *degradation.test_keys(0, 4, 'x'))
    assert lq.shape == tuple(ours[0].permute(1, 2, 0).shape) == (16, 16, 3)


# ----------------------------------------------------------------------------- mix
def test_mix_groups_and_first_order_only_versions():
    from degradation import mix
    groups = [mix.group(degradation.test_keys(0, 4, f'img+{k}')[0]) for k in range(3000)]
    assert groups.count('realesrgan') / 3000 == pytest.approx(0.6, abs=0.03)
    part = mix.Mix(4).parts['realesrgan']
    draws = [part.draw(*degradation.test_keys(0, 4, f'i{k}'))[0] for k in range(2000)]
    assert np.mean([d['second_order'] for d in draws]) == pytest.approx(0.2, abs=0.03)
    for d in draws[:200]:
        assert d['kernel1']['size'] in (3, 5, 7) and d['kernel2']['size'] in (3, 5)
        assert 87 <= d['jpeg1'] <= 95 and 90 <= d['jpeg2'] <= 95
        assert 0.8 <= d['resize1']['factor'] <= 1.1 and not d['usm_before']
    hr = torch.rand(3, 3, 32, 40, generator=torch.Generator().manual_seed(1))
    lr, params = mix.Mix(4)(hr, *degradation.train_keys(0, 1, 0, 0, range(3)))
    assert lr.shape == (3, 3, 8, 10) and torch.equal((lr * 255).round() / 255, lr)
    assert all(p['group'] in ('realesrgan', 'bsrgan') for p in params)
    # the presets without second_order_prob draw as before (no 'second_order' key)
    assert 'second_order' not in degradation.make('realesrgan', 4).draw(
        *degradation.test_keys(0, 4, 'x'))[0]
