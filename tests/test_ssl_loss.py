"""SSL loss: the edge mask against PIL + OpenCV and against a direct reading of its
definition, the loss value and gradient against the pure-PyTorch oracle, empty masks,
the detached HR graph, one op call per batch, and the flags."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import option
import utility
from loss import ssl as ssl_module
from loss.ssl import SSL, edge_mask, make_loss
from loss.ssl_cuda import graph_loss, patch_distances
from loss.ssl_cuda.reference import ssl_loss_reference

REPO = Path(__file__).resolve().parent.parent
SET5 = REPO / 'dataset' / 'benchmark' / 'Set5' / 'HR'


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one intra-op thread avoids waking the pool for every op."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def to_tensor(rgb):
    """uint8 [H, W, 3] -> float [1, 3, H, W] in [0, 255]."""
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float()


def published_mask(path, threshold=20):
    """The published pipeline: PIL gray, cv2.Laplacian(gray, cv2.CV_8U) > threshold."""
    cv2 = pytest.importorskip('cv2')
    gray = np.asarray(Image.open(path).convert('RGB').convert('L'))
    return cv2.Laplacian(gray, cv2.CV_8U) > threshold


def check_folder(folder):
    paths = sorted(Path(folder).glob('*.png'))
    assert paths
    for path in paths:
        rgb = np.asarray(Image.open(path).convert('RGB'))
        expected = published_mask(path)
        got = edge_mask(to_tensor(rgb))[0, 0].numpy()
        assert got.shape == expected.shape
        assert (got == expected).all(), path.name
        # the same image given in [0, 1]
        got1 = edge_mask(to_tensor(rgb) / 255, rgb_range=1)[0, 0].numpy()
        assert (got1 == expected).all(), path.name
        rows, cols = np.indices(expected.shape)
        got3 = edge_mask(to_tensor(rgb), stride=3)[0, 0].numpy()
        assert (got3 == (expected & ((rows - cols) % 3 == 0))).all(), path.name


def test_edge_mask_equals_pil_and_opencv_on_set14(shared_dir):
    check_folder(shared_dir / 'benchmark' / 'Set14' / 'HR')


def test_edge_mask_equals_pil_and_opencv_on_bundled_set5():
    check_folder(SET5)


def direct_mask(rgb, threshold, stride):
    """The definition read pixel by pixel: PIL luma, 3x3 Laplacian with reflect-101
    borders, saturated to 0..255, > threshold, (row - col) % stride == 0."""
    h, w = rgb.shape[:2]
    gray = [[(int(rgb[y, x, 0]) * 19595 + int(rgb[y, x, 1]) * 38470 + int(rgb[y, x, 2]) * 7471
              + 32768) >> 16 for x in range(w)] for y in range(h)]

    def reflect101(i, n):
        if n == 1:
            return 0
        return -i if i < 0 else (2 * n - 2 - i if i >= n else i)

    def at(y, x):
        return gray[reflect101(y, h)][reflect101(x, w)]

    mask = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            response = at(y - 1, x) + at(y + 1, x) + at(y, x - 1) + at(y, x + 1) - 4 * at(y, x)
            response = min(max(response, 0), 255)
            mask[y, x] = response > threshold and (y - x) % stride == 0
    return mask


def generated_image(tmp_path, h, w, seed):
    """An RGB PNG with noise, flat areas, a sharp checkerboard (responses beyond 255) and
    a bright square (strongly negative responses), read back as uint8 [H, W, 3]."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[: h // 2, : w // 2] = 90
    checker = (np.indices((h, w)).sum(0) % 2 * 255).astype(np.uint8)
    img[h // 2:, : w // 3] = checker[h // 2:, : w // 3, None]
    img[1:3, -4:-1] = 255
    path = tmp_path / f'generated_{h}x{w}.png'
    Image.fromarray(img).save(path)
    return np.asarray(Image.open(path).convert('RGB'))


@pytest.mark.parametrize('h, w', [(17, 23), (6, 9), (1, 7), (5, 1), (2, 2)])
@pytest.mark.parametrize('threshold, stride', [(20, 1), (20, 3), (254, 1), (0, 2)])
def test_edge_mask_follows_its_definition_on_generated_images(tmp_path, h, w, threshold, stride):
    rgb = generated_image(tmp_path, h, w, seed=h * 31 + w)
    expected = direct_mask(rgb, threshold, stride)
    for scale, rgb_range in ((1.0, 255), (1 / 255, 1)):
        got = edge_mask(to_tensor(rgb) * scale, rgb_range, threshold, stride)
        assert got.dtype == torch.bool and got.shape == (1, 1, h, w)
        assert (got[0, 0].numpy() == expected).all()
    # gray input: the gray values themselves
    gray = np.asarray(Image.fromarray(rgb).convert('L'))
    got = edge_mask(torch.from_numpy(gray.copy())[None, None].float(), 255, threshold, stride)
    assert (got[0, 0].numpy() == expected).all()


def test_edge_mask_handles_a_batch_at_once():
    rgb = [np.asarray(Image.open(p).convert('RGB'))[:64, :64] for p in sorted(SET5.glob('*.png'))]
    batch = torch.cat([to_tensor(x) for x in rgb])
    together = edge_mask(batch, stride=3)
    for i, x in enumerate(rgb):
        assert torch.equal(together[i:i + 1], edge_mask(to_tensor(x), stride=3))


def real_pair(n=2, size=40, noise=6.0, seed=0):
    """HR crops [n, 3, size, size] of Set5 and an SR made of HR plus noise (both in [0, 255])."""
    paths = sorted(SET5.glob('*.png'))[:n]
    hr = torch.cat([to_tensor(np.asarray(Image.open(p).convert('RGB'))[60:60 + size,
                                                                        60:60 + size])
                    for p in paths])
    gen = torch.Generator().manual_seed(seed)
    sr = hr + noise * torch.randn(hr.shape, generator=gen)
    return sr, hr


@pytest.mark.parametrize('normalize, kl, stride', [(True, 1.0, 1), (False, 0.5, 3), (True, 0.0, 3)])
def test_ssl_value_and_gradient_match_the_oracle(normalize, kl, stride):
    sr, hr = real_pair()
    criterion = SSL(search=11, window=5, sigma=0.004, threshold=20, stride=stride, kl=kl,
                    normalize=normalize)
    mask = edge_mask(hr, 255, 20, stride)
    assert mask.sum() > 20

    x = sr.clone().requires_grad_()
    value = criterion(x, hr)
    value.backward()
    x64 = sr.double().requires_grad_()
    expected = ssl_loss_reference(x64, hr.double(), mask, 11, 5, 0.004, kl, normalize, 255)
    expected.backward()
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    err = (x.grad.double() - x64.grad).abs().max() / x64.grad.abs().max()
    assert err < 1e-5

    # float64 runs the PyTorch arithmetic: equal to the oracle up to rounding
    y64 = sr.double().requires_grad_()
    value64 = criterion(y64, hr.double())
    value64.backward()
    assert value64.item() == pytest.approx(expected.item(), rel=1e-9)
    assert torch.allclose(y64.grad, x64.grad, rtol=1e-6, atol=1e-12 * x64.grad.abs().max().item())


def test_default_parameters_match_the_oracle():
    sr, hr = real_pair(n=1, size=48, noise=10.0, seed=1)
    x = sr.clone().requires_grad_()
    value = SSL()(x, hr)
    expected = ssl_loss_reference(sr.double(), hr.double(), edge_mask(hr))
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_batch_without_edges_gives_zero_still_connected():
    hr = torch.full((2, 3, 30, 30), 128.0)
    sr = (hr + torch.randn(hr.shape)).requires_grad_()
    value = SSL(search=11, window=5)(sr, hr)
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert torch.equal(sr.grad, torch.zeros_like(sr))


def test_hr_graph_carries_no_gradient():
    sr, hr = real_pair(n=1)
    sr.requires_grad_()
    hr.requires_grad_()
    SSL(search=11, window=5)(sr, hr).backward()
    assert hr.grad is None
    assert sr.grad.abs().sum() > 0


def test_one_op_call_per_batch(monkeypatch):
    """The whole batch goes to the compiled op at once: training on the CPU, one fused call;
    without a gradient, one distance call for SR and one for HR."""
    calls = []
    real, real_fused = ssl_module.patch_distances, ssl_module.ssl_loss_fused

    def counting(image, mask, *rest):
        calls.append(('distances', image.shape[0]))
        return real(image, mask, *rest)

    def counting_fused(sr, hr, mask, *rest):
        calls.append(('fused', sr.shape[0]))
        return real_fused(sr, hr, mask, *rest)

    monkeypatch.setattr(ssl_module, 'patch_distances', counting)
    monkeypatch.setattr(ssl_module, 'ssl_loss_fused', counting_fused)
    sr, hr = real_pair(n=4, size=32)
    SSL(search=11, window=5)(sr.clone().requires_grad_(), hr).backward()
    assert calls == [('fused', 4)]
    calls.clear()
    with torch.no_grad():
        SSL(search=11, window=5)(sr, hr)
    assert calls == [('distances', 4), ('distances', 4)]  # the SR batch and the HR batch


def _two_step(criterion, sr, hr):
    """The SSL loss from the op and the graph arithmetic, as the non-fused path computes it."""
    mask = edge_mask(hr, criterion.rgb_range, criterion.threshold, criterion.stride)
    scale = 1.0 / criterion.rgb_range
    d_sr = patch_distances(sr * scale, mask, criterion.search, criterion.window)
    with torch.no_grad():
        d_hr = patch_distances(hr * scale, mask, criterion.search, criterion.window)
    return graph_loss(d_sr, d_hr, sr.shape[1], criterion.window, criterion.sigma,
                      criterion.normalize, criterion.kl)


@pytest.mark.parametrize('channels, search, window, normalize, kl, stride', [
    (3, 25, 9, True, 1.0, 3),     # the defaults, training stride
    (3, 11, 5, False, 0.5, 1),
    (1, 13, 7, True, 0.0, 2),
    (3, 41, 9, True, 1.0, 3),     # offsets past 32 lanes
])
def test_fused_loss_equals_the_two_step_form(channels, search, window, normalize, kl, stride):
    """Training on the CPU takes one compiled pass (distances, graphs, loss and gradient);
    it gives the loss and gradient of the op + graph arithmetic to float rounding."""
    sr, hr = real_pair(n=3, size=48)
    if channels == 1:
        sr, hr = sr[:, :1].contiguous(), hr[:, :1].contiguous()
    criterion = SSL(search=search, window=window, sigma=0.004, stride=stride, kl=kl,
                    normalize=normalize)
    x, y = sr.clone().requires_grad_(), sr.clone().requires_grad_()
    fused = criterion(x, hr)
    (100 * fused).backward()
    two_step = _two_step(criterion, y, hr)
    (100 * two_step).backward()
    assert fused.item() == pytest.approx(two_step.item(), rel=1e-6)
    assert (x.grad - y.grad).abs().max() <= 1e-4 * y.grad.abs().max()


def test_fused_loss_is_the_same_for_any_thread_count():
    sr, hr = real_pair(n=4, size=64)
    criterion = SSL(stride=1)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            x = sr.clone().requires_grad_()
            value = criterion(x, hr)
            value.backward()
            results.append((value.detach(), x.grad))
    finally:
        torch.set_num_threads(before)
    for value, grad in results[1:]:
        assert torch.equal(value, results[0][0]) and torch.equal(grad, results[0][1])


def test_fused_loss_keeps_its_values_when_batch_sizes_change():
    """The fused loss keeps its padded images' memory from one call to the next, and the
    kernels keep their scratch buffers: a call after a larger or a smaller one gives the
    same bits as the first call on those images."""
    sr, hr = real_pair(n=4, size=64)
    criterion = SSL(stride=2)

    def run(a, b):
        x = a.clone().requires_grad_()
        value = criterion(x, b)
        value.backward()
        return value.detach(), x.grad

    small = run(sr[:1], hr[:1])
    large = run(sr, hr)
    for again, first in ((run(sr[:1], hr[:1]), small), (run(sr, hr), large),
                         (run(sr[:1], hr[:1]), small)):
        assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])


def test_make_loss_maps_the_flags():
    args = option.parse_args(['--loss', '1*SSL', '--ssl_search', '11', '--ssl_window', '5', '--ssl_sigma', '0.01',
                              '--ssl_threshold', '30', '--ssl_stride', '3', '--ssl_kl', '0.5',
                              '--ssl_no_norm', '--rgb_range', '1'])
    criterion = make_loss(args)
    assert (criterion.search, criterion.window, criterion.sigma, criterion.threshold,
            criterion.stride, criterion.kl, criterion.normalize, criterion.rgb_range) == (
        11, 5, 0.01, 30.0, 3, 0.5, False, 1)
    defaults = make_loss(option.parse_args([]))
    assert (defaults.search, defaults.window, defaults.sigma, defaults.threshold,
            defaults.stride, defaults.kl, defaults.normalize, defaults.rgb_range) == (
        25, 9, 0.004, 20.0, 1, 1.0, True, 255)


def test_bad_settings_are_user_errors():
    with pytest.raises(utility.UserError, match='window 11 is larger than the search square 9'):
        SSL(search=9, window=11)
    with pytest.raises(utility.UserError, match='sigma must be > 0'):
        SSL(sigma=0)
    with pytest.raises(utility.UserError, match='at least search//2\\+1 = 13 pixels'):
        SSL()(torch.rand(1, 3, 12, 12) * 255, torch.rand(1, 3, 12, 12) * 255)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_matches_cpu():
    sr, hr = real_pair()
    criterion = SSL(search=11, window=5, stride=3)
    xc = sr.clone().requires_grad_()
    criterion(xc, hr).backward()
    xg = sr.cuda().requires_grad_()
    value = criterion(xg, hr.cuda())
    value.backward()
    assert torch.equal(edge_mask(hr.cuda()).cpu(), edge_mask(hr))
    assert value.item() == pytest.approx(criterion(sr, hr).item(), rel=1e-4)
    assert torch.allclose(xg.grad.cpu(), xc.grad, rtol=1e-3, atol=1e-3 * xc.grad.abs().max().item())
