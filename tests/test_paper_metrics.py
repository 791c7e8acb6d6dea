"""The SSL paper's other metrics (NIQE, FID) and evaluation protocol switches.

NIQE against BasicSR's ``calculate_niqe`` (a fixture made by tests/reference/make_niqe_fixture.py,
and the installed basicsr's file loaded by path when present); FID's Inception features and
Frechet distance against pytorch-fid / BasicSR on random weights in pt_inception's layout (a
fixture from tests/reference/make_fid_fixture.py, and pytorch-fid's inception.py loaded by path
with the torchvision stand-in when installed); PSNR/SSIM of ``--protocol ssl_paper`` against
BasicSR's ``calculate_psnr`` / ``calculate_ssim``; the set-level report through the CLI.
"""
import csv
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import metric
import official_basicsr
import official_fid
import official_pyiqa
import option
import torchvision_standin as tvs
from paper_weights import MUSIQ_FILE, write_all_weights
import utility
from cli import REPO, assert_user_error, run_main
from metric import _weights, clipiqa as clip_mod, fid as fid_mod, musiq as musiq_mod, \
    niqe as niqe_mod
from metric.psnr import psnr_per_image
from metric.ssim import ssim_per_image

DATA = REPO / 'tests' / 'data'
SET5 = REPO / 'dataset' / 'benchmark' / 'Set5' / 'HR'


def _tensor(a):
    """uint8 [H, W, 3] -> float [1, 3, H, W] in 0..255."""
    return torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float()


def _set5(name):
    return np.asarray(Image.open(SET5 / f'{name}.png').convert('RGB'))


def _bicubic_x4(hr):
    """(SR, HR) uint8: HR cropped to a multiple of 4 and PIL bicubic down and up by 4."""
    hr = hr[:hr.shape[0] // 4 * 4, :hr.shape[1] // 4 * 4]
    img = Image.fromarray(hr)
    sr = img.resize((img.width // 4, img.height // 4), Image.BICUBIC).resize(img.size,
                                                                             Image.BICUBIC)
    return np.asarray(sr), hr


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(metric, '_BUILT', {})


def _args(*flags):
    return option.parse_args([str(f) for f in flags])


# ----------------------------------------------------------------------------- NIQE

@pytest.fixture(scope='module')
def niqe_fixture(tmp_path_factory):
    """(fixture arrays, a --metric_weights folder holding its niqe_pris_params.npz)."""
    data = dict(np.load(DATA / 'niqe_basicsr.npz'))
    folder = tmp_path_factory.mktemp('niqe')
    np.savez(folder / 'niqe_pris_params.npz', **{k: data[k] for k in
                                                  ('mu_pris_param', 'cov_pris_param',
                                                   'gaussian_window')})
    return data, folder


def test_niqe_equals_basicsr_fixture(niqe_fixture):
    data, folder = niqe_fixture
    m = metric.build(_args('--metrics', 'niqe', '--metric_weights', folder), 'cpu')['niqe']
    assert m.head_file == folder / 'niqe_pris_params.npz'
    images = {'synthetic': data['synthetic']}
    images.update({name: _set5(name) for name in data['names'][1:]})
    for name, value in zip(data['names'], data['values']):
        got = m(_tensor(images[str(name)]), None, 4, True).item()
        # Largest difference here: 4.2e-4 (baby), from the half-scale resize's float32
        # weights (BasicSR's are computed in float32, ours in float64).
        assert got == pytest.approx(float(value), abs=1e-3), name


def test_niqe_equals_live_basicsr_on_bicubic_sr():
    ref = official_basicsr.niqe_module()
    if ref is None:
        pytest.skip('basicsr (pip install --no-deps basicsr) and cv2 are needed')
    m = niqe_mod.NIQE(255)
    for name in ('bird', 'butterfly', 'woman'):
        sr, _ = _bicubic_x4(_set5(name))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            want = ref.calculate_niqe(sr[..., ::-1].copy(), 4, input_order='HWC',
                                      convert_to='y')
        assert m(_tensor(sr), None, 4, True).item() == pytest.approx(want, abs=1e-3), name
    # With rgb_range 1 and the border of another protocol the same numbers come out.
    sr, _ = _bicubic_x4(_set5('bird'))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        want = ref.calculate_niqe(sr[..., ::-1].copy(), 10, input_order='HWC', convert_to='y')
    got = niqe_mod.NIQE(1, crop='edsr')(_tensor(sr) / 255, None, 4, False).item()
    assert got == pytest.approx(want, abs=1e-3)


def test_niqe_scores_noise_worse_and_refuses_small_images(niqe_fixture):
    _, folder = niqe_fixture
    m = niqe_mod.NIQE(255, folder)
    clean = _set5('baby')[:200, :200]
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25, clean.shape), 0, 255)
    a, b = m(_tensor(clean), None, 4, True).item(), m(_tensor(noisy), None, 4, True).item()
    assert np.isfinite(a) and b > a + 1
    with pytest.raises(ValueError, match='too small for NIQE'):
        m(_tensor(clean[:100, :100]), None, 4, True)


def test_niqe_missing_or_wrong_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(_weights, '_installed_files', lambda *a: [])
    with pytest.raises(utility.UserError) as e:
        metric.build(_args('--metrics', 'niqe', '--metric_weights', tmp_path), 'cpu')
    text = str(e.value)
    assert '\n' not in text and 'niqe_pris_params.npz' in text
    assert 'pip install --no-deps basicsr' in text and '--metric_weights' in text
    np.savez(tmp_path / 'niqe_pris_params.npz', mu_pris_param=np.zeros((1, 35)))
    with pytest.raises(utility.UserError, match='mu_pris_param of shape'):
        metric.build(_args('--metrics', 'niqe', '--metric_weights', tmp_path), 'cpu')
    (tmp_path / 'niqe_pris_params.npz').write_text('<html>')
    with pytest.raises(utility.UserError, match='cannot be read as an .npz'):
        metric.build(_args('--metrics', 'niqe', '--metric_weights', tmp_path), 'cpu')


# ----------------------------------------------------------------------------- FID

@pytest.fixture(scope='module')
def fid_fixture(tmp_path_factory):
    """(fixture dict, a folder holding the fixture's random pt_inception file)."""
    data = torch.load(DATA / 'fid_reference.pt', weights_only=True)
    folder = tmp_path_factory.mktemp('fid')
    tvs.write_fid_inception(folder, data['seed'])
    return data, folder


def test_fid_features_equal_pytorch_fid_fixture(fid_fixture):
    data, folder = fid_fixture
    m = fid_mod.FID(255, folder)
    got = m.features(data['images'].float())
    assert np.abs(got - data['features'].double().numpy()).max() < 1e-5


def test_frechet_distance_equals_basicsr_fixture(fid_fixture):
    data, _ = fid_fixture
    f = data['features'].double().numpy()[:, :64]
    value, note = fid_mod.frechet_distance(*fid_mod.statistics(f[:3]),
                                           *fid_mod.statistics(f[3:]))
    assert value == pytest.approx(data['fid_64'], rel=1e-6, abs=1e-9)
    assert fid_mod.frechet_distance(*fid_mod.statistics(f), *fid_mod.statistics(f))[0] \
        == pytest.approx(0, abs=1e-6)


def test_fid_equals_live_pytorch_fid_and_basicsr(tmp_path, monkeypatch):
    module, ref = official_fid.inception_module(), official_basicsr.fid_module()
    if module is None or ref is None:
        pytest.skip('pytorch-fid and basicsr are needed (pip install --no-deps pytorch-fid '
                    'basicsr)')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    tvs.write_fid_inception(tmp_path / 'hub' / 'checkpoints', seed=5)
    official = module.InceptionV3([3]).eval()
    ours = fid_mod.FID(255)
    # Odd sizes, up- and down-scaled to 299, rgb_range 1 on our side.
    imgs = torch.randint(0, 256, (3, 3, 57, 331), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = official(imgs.float() / 255)[0].flatten(1).double().numpy()
    assert np.abs(fid_mod.FID(1).features(imgs.float() / 255) - want).max() < 1e-5
    f = want[:, :16]
    g = ours.features(imgs.flip(-1).float())[:, :16]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        expected = ref.calculate_fid(f.mean(0), np.cov(f, rowvar=False), g.mean(0),
                                     np.cov(g, rowvar=False))
    got, _ = fid_mod.frechet_distance(*fid_mod.statistics(f), *fid_mod.statistics(g))
    assert got == pytest.approx(expected, rel=1e-9)


def test_fid_of_a_set_caches_hr_and_notes_the_rank(fid_fixture):
    _, folder = fid_fixture
    m = fid_mod.FID(255, folder)
    g = torch.Generator().manual_seed(0)
    hrs = [torch.randint(0, 256, (1, 3, 32, 40), generator=g).float() for _ in range(3)]
    for hr in hrs:
        m.add(hr.flip(-1), hr, 4, True)
    assert len(m._hr_cache) == 3
    value, note = m.result()
    assert np.isfinite(value) and value > 0
    assert 'from 3 SR and 3 HR images' in note and 'rank <= 2 < 2048' in note
    m.reset()
    m.add(hrs[0], hrs[0], 4, True)
    with pytest.raises(utility.UserError, match='at least 2 images'):
        m.result()


def test_fid_missing_or_wrong_weights_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'home'))
    with pytest.raises(utility.UserError) as e:
        metric.build(_args('--metrics', 'fid'), 'cpu')
    text = str(e.value)
    assert '\n' not in text and 'pt_inception-2015-12-05-6726825d.pth' in text
    assert 'github.com/mseitzer/pytorch-fid/releases' in text
    assert str(tmp_path / 'home' / 'hub' / 'checkpoints') in text
    state = tvs.random_fid_inception_state()
    del state['Mixed_7c.branch_pool.conv.weight']
    torch.save(state, tmp_path / tvs.FID_FILE)
    with pytest.raises(utility.UserError, match='1 missing keys'):
        metric.build(_args('--metrics', 'fid', '--metric_weights', tmp_path), 'cpu')


# ----------------------------------------------------------------------------- MUSIQ

@pytest.fixture(scope='module')
def musiq_fixture(tmp_path_factory):
    """(fixture dict, a folder holding its random weights under the published name)."""
    data = torch.load(DATA / 'musiq_reference.pt', weights_only=True)
    folder = tmp_path_factory.mktemp('musiq')
    torch.save(official_pyiqa.random_state(data['layout'], data['seed']), folder / MUSIQ_FILE)
    return data, folder


def test_musiq_has_the_published_layout(musiq_fixture):
    data, _ = musiq_fixture
    with torch.device('meta'):
        net = musiq_mod.MUSIQNet()
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == \
        {k: tuple(v) for k, v in data['layout'].items()}


def test_musiq_equals_pyiqa_fixture(musiq_fixture):
    data, folder = musiq_fixture
    m = metric.build(_args('--metrics', 'musiq', '--metric_weights', folder,
                           '--crop_border', '0'), 'cpu')['musiq']
    for img, want in zip(data['images'], data['scores']):
        assert m(img[None].float(), None, 4, True).item() == pytest.approx(want, abs=1e-4)


def test_musiq_equals_live_pyiqa(musiq_fixture, monkeypatch):
    module = official_pyiqa.musiq_module()
    if module is None:
        pytest.skip('pyiqa\'s source is needed (PYIQA_SRC=<unpacked wheel>/pyiqa)')
    data, folder = musiq_fixture
    official = module.MUSIQ(pretrained=False).eval()
    official.load_state_dict(torch.load(folder / MUSIQ_FILE, weights_only=True))
    ours = musiq_mod.MUSIQ(1, folder)           # rgb_range 1, benchmark border 4
    sr, _ = _bicubic_x4(_set5('butterfly'))
    with torch.no_grad():     # the paper's script: crop 4, k / 255, [3, H, W]
        want = official(_tensor(sr)[0, :, 4:-4, 4:-4] / 255).item()
    assert ours(_tensor(sr) / 255, None, 4, True).item() == pytest.approx(want, abs=1e-4)


def test_musiq_missing_or_wrong_file_is_one_line(tmp_path, monkeypatch, musiq_fixture):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'home'))
    with pytest.raises(utility.UserError) as e:
        metric.build(_args('--metrics', 'musiq'), 'cpu')
    text = str(e.value)
    assert '\n' not in text and MUSIQ_FILE in text and 'huggingface.co/chaofengc' in text
    assert str(tmp_path / 'home' / 'hub' / 'checkpoints') in text
    assert str(tmp_path / 'home' / 'hub' / 'pyiqa') in text
    data, _ = musiq_fixture
    layout = dict(data['layout'])
    layout['head.weight'] = (10, 384)              # the AVA head, not KonIQ's
    torch.save(official_pyiqa.random_state(layout), tmp_path / MUSIQ_FILE)
    with pytest.raises(utility.UserError, match='head.weight of shape'):
        metric.build(_args('--metrics', 'musiq', '--metric_weights', tmp_path), 'cpu')


# ----------------------------------------------------------------------------- CLIP-IQA

@pytest.fixture(scope='module')
def clip_fixture(tmp_path_factory):
    """(fixture dict, a folder holding its random RN50.pt, float16 as OpenAI's)."""
    data = torch.load(DATA / 'clipiqa_reference.pt', weights_only=True)
    folder = tmp_path_factory.mktemp('clip')
    torch.save(official_pyiqa.clip_random_state(data['layout'], data['seed']), folder / 'RN50.pt')
    return data, folder


def test_clipiqa_layout_and_prompt_tokens_are_the_published_ones(clip_fixture):
    data, _ = clip_fixture
    with torch.device('meta'):
        net = clip_mod.CLIPRN50()
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()
            if not k.endswith('num_batches_tracked')} == \
        {k: tuple(v) for k, v in data['layout'].items()}
    assert torch.equal(clip_mod.token_ids(), data['tokens'])


def test_clipiqa_tokens_equal_the_real_tokenizer():
    tok = official_pyiqa.clip_tokenizer()
    if tok is None:
        pytest.skip('the CLIP tokenizer is needed (CLIP_SRC=<openai-clip>/clip, ftfy, regex)')
    for prompt, ids in zip(clip_mod.PROMPTS, clip_mod.TOKENS):
        assert [49406] + tok.encode(prompt) + [49407] == list(ids), prompt


def test_clipiqa_equals_pyiqa_fixture(clip_fixture):
    data, folder = clip_fixture
    m = metric.build(_args('--metrics', 'clipiqa', '--metric_weights', folder,
                           '--crop_border', '0'), 'cpu')['clipiqa']
    assert m.backbone_file == folder / 'RN50.pt'
    for img, want in zip(data['images'], data['scores']):
        assert m(img[None].float(), None, 4, True).item() == pytest.approx(want, abs=1e-5)


def test_clipiqa_equals_live_pyiqa(clip_fixture):
    module = official_pyiqa.clipiqa_module(lambda texts: clip_mod.token_ids())
    if module is None:
        pytest.skip('pyiqa\'s source is needed (PYIQA_SRC=<unpacked wheel>/pyiqa)')
    data, folder = clip_fixture
    build = module.load.__globals__['build_model']
    module.load = lambda path, device: build(torch.load(path, weights_only=True)).float()
    official = module.CLIPIQA(backbone=str(folder / 'RN50.pt'))
    sr, _ = _bicubic_x4(_set5('bird'))
    with torch.no_grad():       # the paper's script: crop 4, k / 255, [3, H, W]
        want = official(_tensor(sr)[0, :, 4:-4, 4:-4] / 255).item()
    got = clip_mod.CLIPIQA(1, folder)(_tensor(sr) / 255, None, 4, True).item()
    assert got == pytest.approx(want, abs=1e-5)


def test_clipiqa_reads_torchscript_archives_and_refuses_other_layouts(tmp_path):
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_final = torch.nn.LayerNorm(4)

        def forward(self, x):
            return self.ln_final(x)
    torch.jit.save(torch.jit.script(Tiny()), tmp_path / 'RN50.pt')
    state = clip_mod.read_state(tmp_path / 'RN50.pt')
    assert set(state) == {'ln_final.weight', 'ln_final.bias'}
    with pytest.raises(utility.UserError, match="missing keys.*OpenAI's CLIP RN50.pt"):
        clip_mod.load_network(tmp_path / 'RN50.pt')
    (tmp_path / 'bad').mkdir()
    (tmp_path / 'bad' / 'RN50.pt').write_text('<html>not a file</html>')
    with pytest.raises(utility.UserError, match='not a torch file'):
        clip_mod.load_network(tmp_path / 'bad' / 'RN50.pt')


def test_clipiqa_missing_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'home'))
    monkeypatch.setenv('HOME', str(tmp_path / 'user'))
    with pytest.raises(utility.UserError) as e:
        metric.build(_args('--metrics', 'clipiqa'), 'cpu')
    text = str(e.value)
    assert '\n' not in text and 'RN50.pt' in text and 'openaipublic.azureedge.net' in text
    assert str(tmp_path / 'home' / 'hub' / 'checkpoints') in text


# ----------------------------------------------------------------------------- protocol

def test_ssl_paper_protocol_sets_the_switches_and_flags_override():
    a = _args('--protocol', 'ssl_paper')
    assert (a.y_channel, a.crop_border, a.hr_modcrop, a.div2k_benchmark, a.data_range) == \
        ('float', 'scale', 12, True, '1-800/801-900')
    b = _args('--protocol', 'ssl_paper', '--y_channel', 'rounded', '--crop_border', '2')
    assert (b.y_channel, b.crop_border) == ('rounded', 2)
    c = _args()
    assert (c.protocol, c.y_channel, c.crop_border, c.hr_modcrop, c.div2k_benchmark) == \
        ('edsr', 'rounded', 'edsr', 0, False)


def test_float_y_psnr_ssim_equal_basicsr():
    ref = official_basicsr.psnr_ssim_module()
    if ref is None:
        pytest.skip('basicsr (pip install --no-deps basicsr) and cv2 are needed')
    for name in ('bird', 'woman'):
        sr, hr = _bicubic_x4(_set5(name))
        want_p = ref.calculate_psnr(sr[..., ::-1], hr[..., ::-1], 4, test_y_channel=True)
        want_s = ref.calculate_ssim(sr[..., ::-1], hr[..., ::-1], 4, test_y_channel=True)
        # On DIV2K too (not a benchmark set) with --crop_border scale.
        for bench in (True,):
            p = psnr_per_image(_tensor(sr), _tensor(hr), 4, 255, bench, 'scale', 'float')
            s = ssim_per_image(_tensor(sr), _tensor(hr), 4, 255, bench, 'scale', 'float')
            assert p.item() == pytest.approx(want_p, abs=1e-6)
            assert s.item() == pytest.approx(want_s, abs=1e-6)
        rounded = psnr_per_image(_tensor(sr), _tensor(hr), 4, 255, True, 'scale', 'rounded')
        assert abs(rounded.item() - want_p) > 1e-4      # the switch does something


def test_crop_border_applies_to_every_metric():
    from metric import _pixel
    assert [_pixel.border(4, b, 'edsr') for b in (True, False)] == [4, 10]
    assert [_pixel.border(4, b, 'scale') for b in (True, False)] == [4, 4]
    assert _pixel.border(4, False, 7) == 7
    sr, hr = _bicubic_x4(_set5('bird'))
    x, y = _tensor(sr), _tensor(hr)
    bad = y.clone()
    bad[..., :10, :] = 0                               # damage only the top 10 rows
    inner = psnr_per_image(x[..., 10:, :], y[..., 10:, :], 4, 255, False, 0)
    assert psnr_per_image(x, bad, 4, 255, False, 'edsr') != inner   # top row 10 still counts
    assert psnr_per_image(x, bad, 4, 255, False, 10).item() == pytest.approx(
        psnr_per_image(x[..., 10:-10, 10:-10], y[..., 10:-10, 10:-10], 4, 255, False,
                       0).item())


@pytest.mark.parametrize('argv, needle', [
    (['--hr_modcrop', '12', '--scale', '5'], '--hr_modcrop 12 is not a multiple of --scale 5'),
    (['--div2k_benchmark'], 'has no DIV2K'),
    (['--crop_border', 'wide'], "'edsr', 'scale' or an integer"),
    (['--protocol', 'basicsr'], 'invalid choice'),
])
def test_bad_protocol_flags_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        option.parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and needle in err


def test_hr_modcrop_crops_test_hr_before_making_lr(tmp_path):
    import data
    for mod, want in ((0, (512, 512)), (12, (504, 504))):
        args = _args('--data_test', 'Set5', '--scale', '4', '--hr_modcrop', mod, '--test_only',
                     '--ext', 'img', '--n_threads', '0')
        test = data.Data(args).loader_test[0].dataset
        i = test.image_names.index('baby')
        lr, hr, _ = test[i]
        assert tuple(hr.shape[-2:]) == want and tuple(lr.shape[-2:]) == (want[0] // 4,
                                                                          want[1] // 4)


def test_div2k_benchmark_measures_div2k_as_a_benchmark(tmp_path):
    import data
    folder = tmp_path / 'DIV2K' / 'DIV2K_valid_HR'
    folder.mkdir(parents=True)
    Image.fromarray(_set5('bird')).save(folder / '0801.png')
    for flags, bench in (([], False), (['--div2k_benchmark'], True),
                         (['--protocol', 'ssl_paper'], True)):
        args = _args('--data_test', 'DIV2K', '--dir_data', tmp_path, '--data_range', '801-801',
                     '--test_only', '--ext', 'img', *flags)
        assert data.Data(args).loader_test[0].dataset.benchmark is bench


# ----------------------------------------------------------------------------- CLI

@pytest.mark.slow
def test_cli_reports_fid_per_set_and_niqe_per_image(tmp_path, niqe_fixture):
    _, folder = niqe_fixture
    tvs.write_fid_inception(folder)
    proc = run_main(['--model', 'Bicubic', '--scale', '4', '--data_test', 'Set5', '--test_only',
                     '--metrics', 'psnr+fid+niqe', '--metric_weights', folder, '--save', 'f',
                     '--n_threads', '0', '--protocol', 'ssl_paper'], exp_root=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'FID from 5 SR and 5 HR images, covariances of rank <= 4 < 2048' in proc.stdout
    run = tmp_path / 'f'
    summary = json.loads((run / 'metrics.json').read_text())
    assert list(summary['Set5']['x4']) == ['psnr', 'fid', 'niqe']
    assert summary['protocol']['protocol'] == 'ssl_paper'
    assert summary['protocol']['y_channel'] == 'float'
    with open(run / 'metrics.csv') as f:
        rows = list(csv.DictReader(f))
    # (the LR-set columns of issue 26 follow the metrics)
    assert list(rows[0])[:5] == ['dataset', 'scale', 'image', 'psnr', 'niqe'] and len(rows) == 5
    assert np.mean([float(r['niqe']) for r in rows]) == pytest.approx(
        summary['Set5']['x4']['niqe'], abs=1e-6)
    log = (run / 'log.txt').read_text()
    assert 'Protocol: ssl_paper (Y float' in log and tvs.FID_FILE in log


def test_cli_missing_fid_weights_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'home'))
    proc = run_main(['--model', 'Bicubic', '--test_only', '--metrics', 'psnr+fid', '--save', 'x',
                     '--n_threads', '0'], exp_root=tmp_path / 'exp')
    assert_user_error(proc, 'pt_inception-2015-12-05-6726825d.pth',
                      str(tmp_path / 'home' / 'hub' / 'checkpoints'))
    assert not (tmp_path / 'exp' / 'x').exists()


EIGHT = ['psnr', 'ssim', 'lpips', 'dists', 'fid', 'niqe', 'musiq', 'clipiqa']


@pytest.mark.slow
def test_cli_all_eight_paper_metrics_on_set5_set14_and_the_table(tmp_path, shared_dir):
    weights = write_all_weights(tmp_path / 'weights')
    proc = run_main(['--model', 'Bicubic', '--scale', '4', '--dir_data', shared_dir,
                     '--data_test', 'Set5+Set14', '--test_only', '--protocol', 'ssl_paper',
                     '--metrics', '+'.join(EIGHT), '--metric_weights', weights,
                     '--save', 'paper', '--n_threads', '0'], exp_root=tmp_path / 'exp',
                    timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / 'exp' / 'paper'
    summary = json.loads((run / 'metrics.json').read_text())
    for name, n in (('Set5', 5), ('Set14', 14)):
        assert list(summary[name]['x4']) == EIGHT
        assert all(np.isfinite(summary[name]['x4'][k]) for k in EIGHT)
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(f'[{name} x4]  PSNR'))
        assert all(f'{metric.label(k)}: ' in line for k in EIGHT), line
        assert f'FID from {n} SR and {n} HR images' in proc.stdout
    with open(run / 'metrics.csv') as f:
        rows = list(csv.DictReader(f))
    # Per-image metrics (no FID: a value of the set), then the LR set's columns.
    assert list(rows[0])[:10] == ['dataset', 'scale', 'image'] + [k for k in EIGHT if k != 'fid']
    assert 'fid' not in rows[0] and len(rows) == 19
    table = subprocess.run([sys.executable, str(REPO / 'src' / 'table.py'), str(run)],
                           capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0]
    assert header.count('Set5 ') == 8 and header.count('Set14 ') == 8
    assert 'FID↓' in header and 'MUSIQ↑' in header and 'CLIPIQA↑' in header
