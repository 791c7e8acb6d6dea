"""The degradation ops against their definitions and BasicSR's implementation; determinism."""
import importlib.util
import io
import math
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

import degradation
import utility
from degradation import _ops
from degradation._second_order import SecondOrder, key_rng, key_torch_generator
from official_loader import exec_file, restored_modules


def _basicsr_file(relative):
    """A module file of the pip-installed basicsr, imported alone (cv2 yes, torchvision no)."""
    spec = importlib.util.find_spec('basicsr')
    if spec is None or not spec.submodule_search_locations:
        pytest.skip('basicsr is not installed')
    pytest.importorskip('cv2')
    path = f'{spec.submodule_search_locations[0]}/{relative}'
    # degradations.py imports rgb_to_grayscale from torchvision (absent here); none of the
    # functions compared below use it.
    stub = types.ModuleType('torchvision.transforms.functional_tensor')
    stub.rgb_to_grayscale = None
    # a torchvision already imported (none in this project) is kept; only the missing parts
    # are stood in
    stubs = {name: sys.modules.get(name) or types.ModuleType(name)
             for name in ('torchvision', 'torchvision.transforms')}
    stubs['torchvision.transforms.functional_tensor'] = stub
    name = 'basicsr_' + relative.replace('/', '_').removesuffix('.py')
    with restored_modules([name], stubs):
        return exec_file(name, path)


@pytest.fixture(scope='module')
def official():
    return _basicsr_file('data/degradations.py')


# ----------------------------------------------------------------------------- kernels
@pytest.mark.parametrize('size', [3, 7, 21])
def test_kernels_sum_to_one_with_the_drawn_shape(size):
    rng = np.random.default_rng(0)
    for kind in _ops.KERNEL_TYPES:
        for _ in range(5):
            params = _ops.draw_blur_kernel(rng, [size], [kind], [1.0], 0.0, (0.2, 3.0),
                                           (0.5, 4.0), (1.0, 2.0))
            k = _ops.make_kernel(params)
            assert params['type'] == kind and params['size'] == size
            assert k.shape == (size, size)
            assert k.sum() == pytest.approx(1.0, abs=1e-12)
            assert (k >= 0).all()
            if kind.endswith('iso') and not kind.endswith('aniso'):
                assert np.allclose(k, k.T) and np.allclose(k, k[::-1])   # isotropic
    for wc in (np.pi / 5, np.pi / 2, np.pi):
        k = _ops.sinc_kernel(size, wc, pad_to=21)
        assert k.shape == (21, 21) and k.sum() == pytest.approx(1.0, abs=1e-12)


def test_gaussian_kernel_is_the_sampled_density():
    """Anisotropic Gaussian = the normal density of covariance R diag(sx^2, sy^2) R^T."""
    sx, sy, theta = 2.0, 0.7, 0.6
    k = _ops.gaussian_kernel(9, sx, sy, theta)
    c, s = math.cos(theta), math.sin(theta)
    cov = np.array([[c, -s], [s, c]]) @ np.diag([sx * sx, sy * sy]) @ np.array([[c, s], [-s, c]])
    inv = np.linalg.inv(cov)
    ref = np.zeros((9, 9))
    for yy in range(-4, 5):
        for xx in range(-4, 5):
            v = np.array([xx, yy])
            ref[yy + 4, xx + 4] = math.exp(-0.5 * v @ inv @ v)
    assert np.allclose(k, ref / ref.sum(), atol=1e-14)
    # generalised with beta = 1 and the plateau's shape at beta -> large are the limits
    assert np.allclose(_ops.generalized_gaussian_kernel(9, sx, sy, theta, 1.0), k)


def test_kernels_match_basicsr(official):
    for size in (7, 13, 21):
        for sx, sy, th in ((0.5, 0.5, 0.0), (2.5, 1.1, 0.9), (3.0, 0.2, -2.0)):
            assert np.allclose(_ops.gaussian_kernel(size, sx, sy, th),
                               official.bivariate_Gaussian(size, sx, sy, th, isotropic=False),
                               atol=1e-12)
            for beta in (0.5, 1.7, 4.0):
                assert np.allclose(
                    _ops.generalized_gaussian_kernel(size, sx, sy, th, beta),
                    official.bivariate_generalized_Gaussian(size, sx, sy, th, beta,
                                                            isotropic=False), atol=1e-12)
                assert np.allclose(
                    _ops.plateau_kernel(size, sx, sy, th, beta),
                    official.bivariate_plateau(size, sx, sy, th, beta, isotropic=False),
                    atol=1e-12)
        for wc in (np.pi / 5, 1.3, np.pi):
            assert np.allclose(_ops.sinc_kernel(size, wc, pad_to=21),
                               official.circular_lowpass_kernel(wc, size, pad_to=21), atol=1e-12)


def test_kernel_draws_follow_the_preset_probabilities():
    rng = np.random.default_rng(1)
    p = degradation.load('realesrgan').PARAMS['stage1']
    draws = [_ops.draw_blur_kernel(rng, p['kernel_sizes'], p['kernel_list'], p['kernel_prob'],
                                   p['sinc_prob'], p['blur_sigma'], p['betag_range'],
                                   p['betap_range']) for _ in range(4000)]
    kinds = [d['type'] for d in draws]
    assert abs(kinds.count('sinc') / 4000 - 0.1) < 0.02
    assert abs(kinds.count('iso') / 4000 - 0.9 * 0.45) < 0.03
    assert {d['size'] for d in draws} == set(range(7, 22, 2))
    for d in draws:
        if d['type'] == 'sinc':
            lo = np.pi / 3 if d['size'] < 13 else np.pi / 5
            assert lo <= d['omega_c'] <= np.pi
        else:
            assert 0.2 <= d['sigma_x'] <= 3.0 and 0.2 <= d['sigma_y'] <= 3.0
            if d['type'].startswith('plateau'):
                assert 1.0 <= d['beta'] <= 2.0


# ----------------------------------------------------------------------------- filters, resize
def test_filter2d_matches_basicsr_and_a_pulse_is_identity():
    ref = _basicsr_file('utils/img_process_util.py')
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 40, 36, generator=g)
    kernels = torch.from_numpy(np.stack([_ops.gaussian_kernel(21, 2.0, 0.8, 0.4),
                                         _ops.pad_kernel(_ops.sinc_kernel(9, 1.2), 21)])).float()
    assert torch.allclose(_ops.filter2d(img, kernels), ref.filter2D(img, kernels), atol=1e-6)
    g1 = torch.from_numpy(_ops.usm_kernel_1d(10)).float()
    assert torch.allclose(_ops.filter2d_separable(img, g1),
                          _ops.filter2d(img, torch.outer(g1, g1).expand(2, 11, 11)), atol=1e-6)
    pulse = torch.zeros(2, 5, 5)
    pulse[:, 2, 2] = 1
    assert torch.equal(_ops.filter2d(img, pulse), img)
    # too small to reflect a 21-tap kernel: replicate padding, same size, sum preserved
    small = torch.rand(1, 3, 6, 6, generator=g)
    out = _ops.filter2d(small, kernels[:1])
    assert out.shape == small.shape and out.min() >= small.min() - 1e-6


def test_usm_sharpen_matches_basicsr():
    ref = _basicsr_file('utils/img_process_util.py')
    img = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(_ops.usm_sharpen(img), ref.USMSharp()(img), atol=1e-5)


def test_resize_modes():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8) / 400
    area = _ops.resize(x, (4, 4), 'area')
    assert torch.allclose(area, x.reshape(2, 3, 4, 2, 4, 2).mean((3, 5)))   # 2x2 block means
    for mode in _ops.RESIZE_MODES:
        for size in ((3, 5), (13, 11)):
            out = _ops.resize(x, size, mode)
            assert out.shape == (2, 3, *size)
            const = _ops.resize(torch.full((1, 3, 8, 8), 0.3), size, mode)
            assert torch.allclose(const, torch.full_like(const, 0.3), atol=1e-6)
    assert torch.equal(_ops.resize(x, (8, 8), 'bicubic'), x)
    with pytest.raises(ValueError):
        _ops.resize(x, (4, 4), 'nearest')


# ----------------------------------------------------------------------------- noise
def test_gaussian_noise_statistics():
    g = torch.Generator().manual_seed(0)
    n = _ops.gaussian_noise((3, 256, 256), 20.0, False, g, 'cpu')
    assert abs(n.mean().item()) < 1e-3
    assert n.std().item() == pytest.approx(20 / 255, rel=0.01)
    assert abs(np.corrcoef(n[0].flatten(), n[1].flatten())[0, 1]) < 0.02      # colour: independent
    gray = _ops.gaussian_noise((3, 64, 64), 20.0, True, g, 'cpu')
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_poisson_noise_statistics():
    """Constant image v (on the 8-bit grid): mean 0, variance v / vals * scale^2."""
    g = torch.Generator().manual_seed(1)
    v = 100 / 255
    img = torch.full((3, 256, 256), v)
    img[0, 0, 0] = 0.0                              # two distinct values -> vals = 2
    n = _ops.poisson_noise(img, 1.0, False, g)[:, 1:, 1:]
    assert abs(n.mean().item()) < 0.01
    assert n.var().item() == pytest.approx(v / 2, rel=0.05)
    n3 = _ops.poisson_noise(img, 3.0, False, torch.Generator().manual_seed(1))[:, 1:, 1:]
    assert n3.var().item() == pytest.approx(9 * v / 2, rel=0.05)
    gray = _ops.poisson_noise(img, 1.0, True, g)
    assert torch.equal(gray[0], gray[2])


# ----------------------------------------------------------------------------- JPEG
def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else 10 * math.log10(255 ** 2 / mse)


@pytest.mark.parametrize('quality', [30, 60, 95])
def test_jpeg_is_libjpeg(quality, shared_dir):
    """Our JPEG = PIL's encoder/decoder; against OpenCV's libjpeg (BasicSR's numpy path)."""
    cv2 = pytest.importorskip('cv2')
    hr = np.asarray(Image.open(shared_dir / 'benchmark' / 'Set5' / 'HR' / 'baby.png')
                    .convert('RGB'))[:128, :128]
    t = torch.from_numpy(hr.transpose(2, 0, 1).copy()).float() / 255
    ours = (_ops.jpeg(t, quality) * 255).round().to(torch.uint8).numpy().transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(hr).save(buf, format='JPEG', quality=quality)
    pil = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert('RGB'))
    assert np.array_equal(ours, pil)
    ok, enc = cv2.imencode('.jpg', hr[..., ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    opencv = cv2.imdecode(enc, 1)[..., ::-1]
    assert _psnr(ours, opencv) > 40            # both libjpeg; decoders may round differently
    assert _psnr(ours, hr) < 48                # and the compression is real


# ----------------------------------------------------------------------------- pipeline
@pytest.mark.parametrize('name', ['realesrgan', 'realesrgan_ssl'])
def test_pipeline_shape_range_and_grid(name):
    deg = degradation.make(name, 4)
    hr = torch.rand(3, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    lr, params = deg(hr, *degradation.train_keys(0, 1, 0, 0, range(3)))
    assert lr.shape == (3, 3, 8, 12)
    assert lr.min() >= 0 and lr.max() <= 1
    assert torch.equal((lr * 255).round() / 255, lr)            # 8-bit values
    assert len(params) == 3 and params[0]['resize1'] == params[2]['resize1']   # per batch
    for p in params:
        assert p['usm_before'] == (name == 'realesrgan')


def test_ssl_preset_draws_within_its_ranges():
    deg = degradation.make('realesrgan_ssl', 4)
    for b in range(40):
        for p in deg.draw(*degradation.train_keys(3, 1, b, 0, range(4))):
            assert p['kernel1']['size'] in (3, 5, 7) and p['kernel2']['size'] in (3, 5)
            if p['kernel1']['type'] != 'sinc':
                assert 0.1 <= p['kernel1']['sigma_x'] <= 0.6
            assert 85 <= p['jpeg1'] <= 95 and 87 <= p['jpeg2'] <= 95
            assert 0.9 <= p['resize1']['factor'] <= 1.1
            if p['noise1']['type'] == 'gaussian':
                assert 1 <= p['noise1']['sigma'] <= 8


def test_same_keys_same_output_other_keys_other_output():
    deg = degradation.make('realesrgan', 2)
    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    keys = degradation.train_keys(5, 2, 1, 0, [8, 9])
    a, pa = deg(hr, *keys)
    b, pb = deg(hr, *keys)
    assert torch.equal(a, b) and pa == pb
    c, pc = deg(hr, *degradation.train_keys(6, 2, 1, 0, [8, 9]))
    assert pc != pa and not torch.equal(a, c)
    # the global RNGs are neither read nor advanced
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    deg(hr, *keys)
    assert torch.equal(state, torch.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])


def test_one_and_two_threads_give_the_same_lr():
    deg = degradation.make('realesrgan', 4)
    hr = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    keys = degradation.test_keys(0, 4, 'img')
    before = torch.get_num_threads()
    try:
        out = []
        for n in (1, 2):
            torch.set_num_threads(n)
            out.append(deg(hr[:1], *keys)[0])
    finally:
        torch.set_num_threads(before)
    assert torch.equal(out[0], out[1])


def test_key_generators_are_independent_streams():
    a = key_rng((1, 2, 3), 0).random(4)
    assert np.array_equal(a, key_rng((1, 2, 3), 0).random(4))
    assert not np.array_equal(a, key_rng((1, 2, 3), 1).random(4))
    assert not np.array_equal(a, key_rng((1, 2, 4), 0).random(4))
    g1, g2 = key_torch_generator((1, 2), 0, 'cpu'), key_torch_generator((1, 2), 0, 'cpu')
    assert torch.equal(torch.randn(5, generator=g1), torch.randn(5, generator=g2))


def test_registry_lists_the_files():
    assert {'bicubic', 'realesrgan', 'realesrgan_ssl'} <= set(degradation.names())
    assert degradation.make('bicubic', 4) is None
    assert isinstance(degradation.make('RealESRGAN', 4), SecondOrder)
    with pytest.raises(utility.UserError, match='realesrgan_ssl'):
        degradation.load('nope')


def test_training_pool_mixes_pairs_deterministically():
    from degradation import _training
    args = utility.FrozenNamespace(degradation='realesrgan_ssl', scale=[2], rgb_range=255,
                                   seed=0, batch_size=2, degradation_pool=4,
                                   degradation_usm_gt=False)
    hr = [torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(i)) * 255
          for i in range(4)]
    runs = []
    for _ in range(2):
        synth = _training.make(args)
        runs.append([synth(h, 1, b) for b, h in enumerate(hr)])
    for (l1, g1), (l2, g2) in zip(*runs):
        assert torch.equal(l1, l2) and torch.equal(g1, g2)
    out = runs[0]
    assert torch.equal(out[0][1], hr[0]) and torch.equal(out[1][1], hr[1])   # filling
    mixed = torch.cat([out[2][1], out[3][1]])
    pool = torch.cat(hr[:3])
    for g in mixed:                           # from the pool (or the current batch)
        assert any(torch.equal(g, p) for p in torch.cat([pool, hr[3]]))
    with pytest.raises(utility.UserError, match='multiple of the per-process batch 2'):
        _training.make(args.replace(degradation_pool=5))
    usm = _training.make(args.replace(degradation_pool=0, degradation_usm_gt=True))
    lr, gt = usm(hr[0], 1, 0)
    assert lr.shape == (2, 3, 8, 8)
    assert torch.allclose(gt, _ops.usm_sharpen(hr[0] / 255) * 255, atol=1e-4)


def test_training_keys_follow_the_sampler_positions_and_ranks_are_disjoint():
    """Each rank's sample keys are the stream positions the sampler gives that rank."""
    from data import _loader
    from degradation import _training
    args = utility.FrozenNamespace(degradation='realesrgan_ssl', scale=[2], rgb_range=255,
                                   seed=7, batch_size=4, degradation_pool=0,
                                   degradation_usm_gt=False)
    seen = set()
    for rank in range(2):
        synth = _training.make(args, rank=rank, world_size=2)
        sampler = _loader.EpochBatchSampler(10, 2, 3, 7, 1, rank, 2)
        sampler.set_epoch(4)
        for b, batch in enumerate(sampler):
            batch_key, keys = synth.keys(4, b, len(batch))
            positions = [seed[3] for _, seed, _ in batch]     # (seed, epoch, _SAMPLE, k)
            assert [k[-1] for k in keys] == positions
            assert batch_key[-1] == rank
            seen.update(positions)
    assert seen == set(range(12))          # 3 batches x 4 global, each position once
