"""LPIPS (alex, vgg) and DISTS: against a float64 reading of their definitions, against the
official lpips / DISTS_pytorch code on the same weight files, and through the CLI.

Backbones are random weights in torchvision's layout (tests/torchvision_standin.py) under
a temporary TORCH_HOME; the heads are the real published files of the installed packages.
"""
import contextlib
import csv
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import metric
import option
import torchvision_standin as tvs
import utility
from cli import REPO, assert_user_error, run_main
from metric import _weights

HAS_LPIPS = importlib.util.find_spec('lpips') is not None
HAS_DISTS = importlib.util.find_spec('DISTS_pytorch') is not None
needs_lpips = pytest.mark.skipif(not HAS_LPIPS, reason='lpips (the v0.1 heads) is not installed')
needs_dists = pytest.mark.skipif(not HAS_DISTS,
                                 reason='DISTS_pytorch (weights.pt) is not installed')
SET5 = REPO / 'dataset' / 'benchmark' / 'Set5' / 'HR'
ALL = 'psnr+ssim+lpips+lpips_vgg+dists'


@pytest.fixture(scope='module')
def torch_home(tmp_path_factory):
    home = tmp_path_factory.mktemp('torch_home')
    tvs.write_hub(home)
    return home


@pytest.fixture
def hub(torch_home, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(torch_home))
    return torch_home / 'hub' / 'checkpoints'


@pytest.fixture
def fresh(monkeypatch):
    """An empty cache of built metrics, so that a changed file is read again."""
    monkeypatch.setattr(metric, '_BUILT', {})


def build(name, *flags):
    args = option.parse_args(['--metrics', name, *flags])
    return metric.build(args, 'cpu')[name]


def _pair(h=52, w=60, seed=0):
    """hr on the 8-bit grid, sr = hr + noise off the grid; float64 [2, 3, h, w] in 0..255."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    base = 128 + 70 * torch.sin(xx / 6.0 + torch.arange(3).view(3, 1, 1)) * torch.cos(yy / 9.0)
    hr = (base[None] + 20 * torch.randn(2, 3, h, w, generator=g)).clamp(0, 255).round().double()
    sr = (hr + 15 * torch.randn(hr.shape, generator=g, dtype=torch.float64)).clamp(0, 255)
    return sr, hr


def _cropped01(img, border):
    """The reference preparation: 8-bit grid, [0, 1], border cropped, float64."""
    return img.round()[..., border:-border, border:-border] / 255.0


# ----------------------------------------------------------------- float64 definitions

def _stage_outputs(features, x, ends, replace=None):
    outs, h = [], x
    for i, layer in enumerate(features):
        h = replace(h) if replace and i in replace.keys else layer(h)
        if i + 1 in ends:
            outs.append(h.clone())
        if i + 1 == max(ends):
            break
    return outs


def lpips64(x, y, arch, checkpoints, head_file):
    """LPIPS v0.1 by its definition, float64, x and y [B, 3, H, W] in [0, 1] -> [B]."""
    features = tvs.loaded_features(arch, checkpoints).double()
    ends = {'alexnet': (2, 5, 8, 10, 12), 'vgg16': (4, 9, 16, 23, 30)}[arch]
    heads = torch.load(head_file, map_location='cpu', weights_only=True)
    shift = torch.tensor([-.030, -.088, -.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([.458, .448, .450], dtype=torch.float64).view(1, 3, 1, 1)
    fx = _stage_outputs(features, ((2 * x - 1) - shift) / scale, ends)
    fy = _stage_outputs(features, ((2 * y - 1) - shift) / scale, ends)
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for k, (a, b) in enumerate(zip(fx, fy)):
        a = a / (torch.sqrt((a ** 2).sum(dim=1, keepdim=True)) + 1e-10)
        b = b / (torch.sqrt((b ** 2).sum(dim=1, keepdim=True)) + 1e-10)
        w = heads[f'lin{k}.model.1.weight'].double().view(1, -1, 1, 1)
        total += ((a - b) ** 2 * w).sum(dim=1).mean(dim=(1, 2))
    return total


class _L2Pool:
    keys = (4, 9, 16, 23)

    def __call__(self, h):
        a = np.hanning(5)[1:-1]
        g = torch.from_numpy(a[:, None] * a[None, :])
        g = (g / g.sum()).expand(h.shape[1], 1, 3, 3)
        return torch.sqrt(F.conv2d(h ** 2, g, stride=2, padding=1, groups=h.shape[1]) + 1e-12)


def dists64(x, y, checkpoints, weights_file):
    """DISTS by its definition (1 - sum alpha S1 - sum beta S2), float64 -> [B]."""
    features = tvs.loaded_features('vgg16', checkpoints).double()
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
    ends = (4, 9, 16, 23, 30)
    fx = [x] + _stage_outputs(features, (x - mean) / std, ends, _L2Pool())
    fy = [y] + _stage_outputs(features, (y - mean) / std, ends, _L2Pool())
    w = torch.load(weights_file, map_location='cpu', weights_only=True)
    alpha, beta = w['alpha'].double().flatten(), w['beta'].double().flatten()
    w_sum = alpha.sum() + beta.sum()
    alpha, beta = alpha / w_sum, beta / w_sum
    score = torch.ones(x.shape[0], dtype=torch.float64)
    start = 0
    for a, b in zip(fx, fy):
        c = a.shape[1]
        ma, mb = a.mean(dim=(2, 3)), b.mean(dim=(2, 3))
        va = ((a - ma[..., None, None]) ** 2).mean(dim=(2, 3))
        vb = ((b - mb[..., None, None]) ** 2).mean(dim=(2, 3))
        cov = (a * b).mean(dim=(2, 3)) - ma * mb
        s1 = (2 * ma * mb + 1e-6) / (ma ** 2 + mb ** 2 + 1e-6)
        s2 = (2 * cov + 1e-6) / (va + vb + 1e-6)
        score -= (alpha[start:start + c] * s1).sum(dim=1) + (beta[start:start + c] * s2).sum(dim=1)
        start += c
    return score


@needs_lpips
@pytest.mark.parametrize('name, arch, size', [('lpips', 'alexnet', (52, 60)),
                                              ('lpips_vgg', 'vgg16', (36, 40))])
def test_lpips_equals_its_definition_in_float64(name, arch, size, hub):
    m = build(name)
    sr, hr = _pair(*size)
    got = m(sr, hr, 2, True)
    ref = lpips64(_cropped01(sr, 2), _cropped01(hr, 2), arch, hub, m.head_file)
    assert got.dtype == torch.float64 and got.shape == (2,)
    assert ref.min() > 1e-3                      # a real distance, not a degenerate case
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-7), (got, ref)
    # Non-benchmark sets crop scale + 6 pixels, as PSNR does.
    ref8 = lpips64(_cropped01(sr, 8), _cropped01(hr, 8), arch, hub, m.head_file)
    assert torch.allclose(m(sr, hr, 2, False), ref8, rtol=1e-5, atol=1e-7)


@needs_dists
def test_dists_equals_its_definition_in_float64(hub):
    m = build('dists')
    sr, hr = _pair(36, 40)
    got = m(sr, hr, 3, True)
    ref = dists64(_cropped01(sr, 3), _cropped01(hr, 3), hub, m.head_file)
    assert ref.min() > 1e-3
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-7), (got, ref)


@pytest.mark.parametrize('name', ['lpips', 'lpips_vgg', 'dists'])
def test_identical_images_give_zero_and_the_distance_is_symmetric(name, hub):
    if not (HAS_DISTS if name == 'dists' else HAS_LPIPS):
        pytest.skip('the package holding the head weights is not installed')
    m = build(name)
    sr, hr = _pair(36, 40, seed=1)     # 32 x 36 after cropping: AlexNet needs 31
    assert m(hr, hr, 2, True).tolist() == [0.0, 0.0]
    assert m(hr + 0.3, hr, 2, True).tolist() == [0.0, 0.0]     # SR is quantised first
    assert torch.allclose(m(sr, hr, 2, True), m(sr.round(), hr, 2, True), atol=0)
    assert torch.allclose(m(sr, hr, 2, True), m(hr, sr, 2, True), rtol=1e-6, atol=1e-9)
    # rgb_range only changes the units of the input.
    args = option.parse_args(['--metrics', name, '--rgb_range', '1'])
    m1 = metric.build(args, 'cpu')[name]
    assert torch.allclose(m1(sr / 255, hr / 255, 2, True), m(sr, hr, 2, True), atol=1e-7)


@pytest.mark.parametrize('name', metric.available())
def test_every_metric_file_scores_a_batch_in_its_direction(name, hub):
    module = metric.get_module(name)
    assert isinstance(getattr(module, 'LOWER_IS_BETTER', False), bool)
    if metric.per_set(name) or getattr(module, 'NO_REFERENCE', False):
        pytest.skip('a metric of a set or without reference: tests/test_paper_metrics.py')
    try:
        m = build(name)
    except utility.UserError as e:     # a head file of a package that is not installed
        pytest.skip(str(e))
    sr, hr = _pair(36, 40, seed=3)
    got, same = m(sr, hr, 2, True), m(hr, hr, 2, True)
    assert got.dtype == torch.float64 and got.shape == (2,)
    assert ((got > same) if metric.lower_is_better(name) else (got < same)).all(), (got, same)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('name', ['lpips', 'lpips_vgg', 'dists'])
def test_cuda_matches_cpu(name, hub):
    if not (HAS_DISTS if name == 'dists' else HAS_LPIPS):
        pytest.skip('the package holding the head weights is not installed')
    args = option.parse_args(['--metrics', name])
    cpu, gpu = metric.build(args, 'cpu')[name], metric.build(args, 'cuda')[name]
    assert gpu is not cpu and gpu.head_file == cpu.head_file
    sr, hr = _pair(52, 60, seed=2)
    # The network lives on the GPU; inputs may come from either device.
    assert torch.allclose(gpu(sr.cuda(), hr.cuda(), 2, True).cpu(), cpu(sr, hr, 2, True),
                          rtol=1e-4, atol=1e-6)
    with torch.autocast('cuda', dtype=torch.float16):     # an AMP evaluation: float32 inside
        assert torch.allclose(gpu(sr, hr, 2, True).cpu(), cpu(sr, hr, 2, True),
                              rtol=1e-4, atol=1e-6)


@needs_lpips
def test_image_too_small_for_alexnet_is_a_value_error(hub):
    m = build('lpips')
    small = torch.zeros(1, 3, 34, 34)
    with pytest.raises(ValueError, match='too small for LPIPS'):
        m(small, small, 2, True)       # 30 pixels after cropping; AlexNet needs 31


# ----------------------------------------------------------------- the official code

@contextlib.contextmanager
def _official_modules(checkpoints):
    """sys.modules with the torchvision stand-in; the official modules are dropped after
    (the libraries they pull in, e.g. scipy, stay: extension modules load once per process)."""
    def ours(key):
        return key.split('.')[0] in ('lpips', 'torchvision', 'dists_official')

    before = {k: v for k, v in sys.modules.items() if ours(k)}
    tv = tvs.fake_torchvision(checkpoints)
    try:
        for key in before:
            del sys.modules[key]
        sys.modules.update({'torchvision': tv, 'torchvision.models': tv.models,
                            'torchvision.transforms': tv.transforms})
        yield
    finally:
        for key in [k for k in sys.modules if ours(k)]:
            del sys.modules[key]
        sys.modules.update(before)


def _load_by_path(name, path, package_dir=None):
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(package_dir)] if package_dir else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _set5_pairs(names, scale=4):
    """(name, sr, hr) float32 [1, 3, H, W] in 0..255: HR of the bundled Set5, SR = PIL bicubic
    down and up by ``scale`` (a real degraded image on the 8-bit grid)."""
    out = []
    for name in names:
        img = Image.open(SET5 / f'{name}.png').convert('RGB')
        w, h = img.size
        img = img.crop((0, 0, w - w % scale, h - h % scale))
        small = img.resize((img.width // scale, img.height // scale), Image.BICUBIC)
        sr = small.resize(img.size, Image.BICUBIC)
        to_t = lambda im: torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float()
        out.append((name, to_t(sr), to_t(img)))
    return out


@needs_lpips
@pytest.mark.parametrize('name, net, images', [
    ('lpips', 'alex', ('bird', 'butterfly', 'head', 'woman')),
    ('lpips_vgg', 'vgg', ('butterfly',))])
def test_lpips_equals_the_official_code_on_set5(name, net, images, hub):
    ours = build(name)
    folder = Path(importlib.util.find_spec('lpips').origin).parent
    with _official_modules(hub):
        official = _load_by_path('lpips', folder / '__init__.py', folder)
        fn = official.LPIPS(net=net, version='0.1', verbose=False)
        # The official forward ran with our stand-in and its own head file: the same files.
        assert Path(official.lpips.__file__).parent == folder
        for image, sr, hr in _set5_pairs(images):
            # The SSL scripts: [0, 1] RGB, 4-pixel border cropped, normalised to [-1, 1].
            a = (sr[..., 4:-4, 4:-4] / 255.0 - 0.5) / 0.5
            b = (hr[..., 4:-4, 4:-4] / 255.0 - 0.5) / 0.5
            with torch.no_grad():
                expected = fn(a, b).item()
            got = ours(sr, hr, 4, True).item()
            assert abs(got - expected) <= 1e-4, (image, got, expected)
            assert expected > 1e-3
    assert ours.head_file == folder / 'weights' / 'v0.1' / f'{net}.pth'


@needs_dists
def test_dists_equals_the_official_code_on_set5(hub):
    ours = build('dists')
    path = Path(importlib.util.find_spec('DISTS_pytorch').origin).parent / 'DISTS_pt.py'
    with _official_modules(hub):
        official = _load_by_path('dists_official', path)
        fn = official.DISTS(load_weights=False)
        w = torch.load(ours.head_file, map_location='cpu', weights_only=True)
        fn.alpha.data, fn.beta.data = w['alpha'], w['beta']
        for image, sr, hr in _set5_pairs(('butterfly',)):
            a, b = sr[..., 4:-4, 4:-4] / 255.0, hr[..., 4:-4, 4:-4] / 255.0
            expected = fn(b, a).item()                # the SSL script: dists(gt, sr)
            got = ours(sr, hr, 4, True).item()
            assert abs(got - expected) <= 1e-4, (image, got, expected)
            assert expected > 1e-3


# ----------------------------------------------------------------- files and errors

def _one_line_error(excinfo, *needles):
    text = str(excinfo.value)
    assert '\n' not in text, text
    for needle in needles:
        assert needle in text, (needle, text)


@pytest.mark.parametrize('name, missing', [('lpips', 'alexnet-owt-7be5be79.pth'),
                                           ('lpips_vgg', 'vgg16-397923af.pth'),
                                           ('dists', 'vgg16-397923af.pth')])
def test_missing_backbone_names_file_source_and_place(name, missing, tmp_path, monkeypatch,
                                                     fresh):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty'))
    with pytest.raises(utility.UserError) as e:
        build(name)
    _one_line_error(e, missing, 'https://download.pytorch.org/models/' + missing,
                    str(tmp_path / 'empty' / 'hub' / 'checkpoints'), '--metric_weights')


@pytest.mark.parametrize('name, file, package', [('lpips', 'alex.pth', 'lpips'),
                                                 ('lpips_vgg', 'vgg.pth', 'lpips'),
                                                 ('dists', 'weights.pt', 'DISTS_pytorch')])
def test_missing_head_names_file_and_package(name, file, package, hub, tmp_path, monkeypatch,
                                             fresh):
    # As if the package were not installed.
    monkeypatch.setattr(_weights, '_installed_files', lambda *a: [])
    with pytest.raises(utility.UserError) as e:
        build(name)
    _one_line_error(e, file, f'pip install --no-deps {package}', '--metric_weights')
    with pytest.raises(utility.UserError) as e:
        build(name, '--metric_weights', str(tmp_path))
    _one_line_error(e, str(tmp_path / file))


def test_installed_head_files_are_found_without_importing_the_packages():
    for head, (file, _, _) in _weights.HEADS.items():
        package = 'DISTS_pytorch' if head == 'dists' else 'lpips'
        if importlib.util.find_spec(package) is None:
            continue
        before = set(sys.modules)
        path = _weights.head_path(head, '', head)
        assert path.name == file and path.is_file()
        assert package not in set(sys.modules) - before


def _bad_file(folder, case):
    """Write one wrong file into ``folder``; returns (its name, a metric reading it, needle)."""
    folder.mkdir(parents=True, exist_ok=True)
    if case == 'backbone layout':                                  # another network
        torch.save(tvs.random_state('alexnet'), folder / 'vgg16-397923af.pth')
        return 'vgg16-397923af.pth', 'dists', 'missing keys'
    if case == 'unreadable':
        (folder / 'alexnet-owt-7be5be79.pth').write_bytes(b'not a torch file')
        return 'alexnet-owt-7be5be79.pth', 'lpips', 'cannot be read'
    if case == 'dists weights':                                    # beta is missing
        torch.save({'alpha': torch.ones(1, 1475, 1, 1)}, folder / 'weights.pt')
        return 'weights.pt', 'dists', "'beta'"
    if case == 'head shape':                                       # vgg's heads as alex.pth
        torch.save({f'lin{k}.model.1.weight': torch.ones(1, c, 1, 1)
                    for k, c in enumerate((64, 128, 256, 512, 512))}, folder / 'alex.pth')
        return 'alex.pth', 'lpips', 'lin1.model.1.weight'
    torch.save([torch.ones(3)], folder / 'vgg.pth')                # not a dict
    return 'vgg.pth', 'lpips_vgg', 'not a dict'


@pytest.mark.parametrize('case', ['backbone layout', 'unreadable', 'dists weights',
                                  'head shape', 'head type'])
def test_wrong_files_in_metric_weights_are_one_line_errors(case, hub, tmp_path, fresh):
    file, name, needle = _bad_file(tmp_path, case)
    with pytest.raises(utility.UserError) as e:
        build(name, '--metric_weights', str(tmp_path))
    _one_line_error(e, str(tmp_path / file), needle)


@pytest.mark.parametrize('argv, needle', [
    (['--metrics', 'psnr+NOPE'], 'dists, fid, lpips, lpips_vgg, '),
    (['--metrics', 'psnr++ssim'], 'empty entry'),
    (['--metrics', 'lpips', '--n_colors', '1'], '--n_colors 3'),
    (['--metrics', 'psnr+ssim', '--best_on', 'Set5:4:lpips'], 'METRIC in --metrics'),
    (['--best_on', 'Set5:4:ssim:x'], 'METRIC in --metrics'),
    (['--metrics', 'lpips', '--metric_weights', '/nonexistent/weights'], 'is not a folder')])
def test_bad_metric_flags_exit_2_with_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as info:
        option.parse_args(argv)
    assert info.value.code == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], lines


def test_metric_flags_parse_case_insensitively():
    args = option.parse_args(['--metrics', 'PSNR+Lpips+dists+psnr', '--best_on', 'Set5:4:LPIPS'])
    assert args.metrics == ['psnr', 'lpips', 'dists']
    assert args.best_key == ('Set5', 4, 'lpips')
    assert option.parse_args([]).best_key == ('Set5', 4, 'psnr')
    assert option.parse_args(['--metrics', 'dists+psnr']).best_key == ('Set5', 4, 'dists')
    lower = {n: metric.lower_is_better(n) for n in metric.available()}
    assert {n: lower[n] for n in ('dists', 'lpips', 'lpips_vgg', 'psnr', 'ssim')} == {
        'dists': True, 'lpips': True, 'lpips_vgg': True, 'psnr': False, 'ssim': False}


def test_networks_are_built_once_per_device(hub, tmp_path):
    # Random heads in the published layout: this test needs no lpips package (README's plain
    # install has none), only a file of the right shape for --metric_weights.
    torch.save({f'lin{k}.model.1.weight': torch.rand(1, c, 1, 1)
                for k, c in enumerate((64, 192, 384, 256, 256))}, tmp_path / 'alex.pth')
    args = option.parse_args(['--metrics', 'psnr+lpips', '--metric_weights', str(tmp_path)])
    a, b = metric.build(args, 'cpu'), metric.build(args, 'cpu')
    assert a['lpips'] is b['lpips'] and not a['lpips'].training
    assert not any(p.requires_grad for p in a['lpips'].parameters())


# ----------------------------------------------------------------- the command line

def _tiny_set(root, n=2, h=52, w=60):
    rng = np.random.default_rng(0)
    for i in range(n):
        yy, xx = np.mgrid[0:h, 0:w]
        img = 120 + 80 * np.sin(xx / (4.0 + i))[..., None] * np.cos(yy / 5.0)[..., None]
        img = np.clip(img + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
        path = root / 'benchmark' / 'Tiny' / 'HR' / f'im{i}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)
    return root


# Runs main.py with every socket connection refused: a download attempt would fail loudly.
_NO_NETWORK = [sys.executable, '-c', (
    'import runpy, socket, sys\n'
    'def refuse(*a, **k): raise RuntimeError("network access attempted")\n'
    'socket.socket.connect = refuse\n'
    'socket.create_connection = refuse\n'
    'sys.argv = sys.argv[1:]\n'
    'runpy.run_path(sys.argv[0], run_name="__main__")\n')]


@pytest.mark.skipif(not (HAS_LPIPS and HAS_DISTS), reason='lpips and DISTS_pytorch are needed')
def test_cli_scores_every_metric_offline(tmp_path, hub):
    data = _tiny_set(tmp_path / 'data')
    proc = run_main(['--model', 'Bicubic', '--scale', '2', '--dir_data', data, '--data_test',
                     'Tiny', '--test_only', '--metrics', ALL.upper(), '--save', 'all',
                     '--n_threads', '0', '--save_results'],
                    exp_root=tmp_path / 'exp', launcher=_NO_NETWORK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = re.search(r'^\[Tiny x2\]  PSNR: \d+\.\d\d  SSIM: 0\.\d{4}  LPIPS: 0\.\d{4}  '
                     r'LPIPS_VGG: 0\.\d{4}  DISTS: 0\.\d{4}$', proc.stdout, re.M)
    assert line, proc.stdout
    assert 'LPIPS (lower is better)' in proc.stdout and 'DISTS (lower is better)' in proc.stdout
    folder = tmp_path / 'exp' / 'all'
    summary = json.loads((folder / 'metrics.json').read_text())
    assert list(summary['Tiny']['x2']) == ['psnr', 'ssim', 'lpips', 'lpips_vgg', 'dists']
    with open(folder / 'metrics.csv') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ['dataset', 'scale', 'image', 'psnr', 'ssim', 'lpips', 'lpips_vgg',
                             'dists', 'degradation', 'lr_seed', 'lr_manifest']
    for key in ('lpips', 'lpips_vgg', 'dists'):
        values = [float(r[key]) for r in rows]
        assert all(re.fullmatch(r'\d\.\d{6}', r[key]) for r in rows)
        assert 0 < min(values) and max(values) < 1
        assert abs(np.mean(values) - summary['Tiny']['x2'][key]) < 1e-6
        shown = float(re.search(rf'  {key.upper()}: (\S+)', line.group(0)).group(1))
        assert abs(shown - summary['Tiny']['x2'][key]) <= 5e-5
    # The scores are those of the saved 8-bit images, as the per-image metric gives them.
    m = build('lpips')
    sr = np.asarray(Image.open(folder / 'results-Tiny' / 'im0_x2_SR.png'))
    hr = np.asarray(Image.open(data / 'benchmark' / 'Tiny' / 'HR' / 'im0.png'))
    to_t = lambda a: torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float()
    row = next(r for r in rows if r['image'] == 'im0')
    assert abs(m(to_t(sr), to_t(hr), 2, True).item() - float(row['lpips'])) < 2e-6
    assert 'alexnet-owt-7be5be79.pth' in (folder / 'log.txt').read_text()


def test_cli_empty_hub_cache_is_one_line_without_network(tmp_path, monkeypatch):
    home = tmp_path / 'torch_home'
    monkeypatch.setenv('TORCH_HOME', str(home))
    proc = run_main(['--model', 'Bicubic', '--test_only', '--metrics', 'psnr+lpips',
                     '--save', 'x', '--n_threads', '0'], exp_root=tmp_path / 'exp',
                    launcher=_NO_NETWORK)
    assert_user_error(proc, 'alexnet-owt-7be5be79.pth', str(home / 'hub' / 'checkpoints'))
    assert not home.exists()                       # nothing was fetched or created
    assert not (tmp_path / 'exp' / 'x').exists()   # refused before the run folder


def test_cli_wrong_weight_file_is_one_line(tmp_path, hub):
    folder = tmp_path / 'weights'
    _bad_file(folder, 'unreadable')
    proc = run_main(['--model', 'Bicubic', '--test_only', '--metrics', 'lpips', '--save', 'x',
                     '--metric_weights', folder, '--n_threads', '0'], exp_root=tmp_path / 'exp')
    assert_user_error(proc, str(folder / 'alexnet-owt-7be5be79.pth'), 'cannot be read')


@pytest.mark.slow
@needs_lpips
def test_validation_computes_the_metrics_and_best_on_picks_the_lowest_lpips(tmp_path, hub):
    data = _tiny_set(tmp_path / 'data', n=1)
    exp = tmp_path / 'exp'
    proc = run_main(['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--scale', '2',
                     '--data_train', 'Sample', '--data_test', 'Tiny', '--dir_data', data,
                     '--patch_size', '32', '--batch_size', '4', '--test_every', '2',
                     '--epochs', '3', '--lr', '2e-3', '--n_threads', '0', '--save', 'run',
                     '--metrics', 'psnr+lpips', '--best_on', 'Tiny:2:lpips'], exp_root=exp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (exp / 'run' / 'log.txt').read_text()
    assert 'Best model is chosen on Tiny x2 (lowest LPIPS, set with --best_on)' in log
    assert len(re.findall(r'^\[Tiny x2\]  PSNR: \S+  LPIPS: 0\.\d{4}  \(Best: 0\.\d{4} @epoch ',
                          log, re.M)) == 3
    ckpt = torch.load(exp / 'run' / 'checkpoint.pt', map_location='cpu', weights_only=True)
    history = ckpt['metric_history']['Tiny']['x2']
    assert len(history['lpips']) == len(history['psnr']) == 3
    lowest = min(history['lpips'])
    assert ckpt['best']['lpips'] == lowest
    assert ckpt['best']['epoch'] == history['lpips'].index(lowest) + 1
    for name in ('psnr', 'lpips'):
        assert (exp / 'run' / f'test_Tiny_{name}.png').is_file()
