"""ELAN (src/model/elan.py) against the SSL repository's elan_arch.py, its strict loading of
BasicSR files, and the ELAN templates through the CLI."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import model
import official_ssl
import utility
from cli import run_main
from conftest import make_args
from model.elan import ELAN, reflect_pad

DATA = Path(__file__).resolve().parent / 'data'
FIXTURE = torch.load(DATA / 'ssl_elan.pt', weights_only=True)


def _ours(kwargs, rgb_range=255):
    return ELAN(scale=kwargs['scale'], rgb_range=rgb_range, windows=tuple(kwargs['window_sizes']),
                m_elan=kwargs['m_elan'], c_elan=kwargs['c_elan'], n_share=kwargs['n_share'],
                r_expand=kwargs['r_expand'], img_range=kwargs['img_range'])


@pytest.mark.parametrize('case', range(len(FIXTURE['cases'])))
@pytest.mark.parametrize('rgb_range', [255, 1])
def test_elan_equals_the_official_network(case, rgb_range):
    data = FIXTURE['cases'][case]
    net = _ours(data['kwargs'], rgb_range).eval()
    assert list(net.state_dict()) == list(data['state'])        # the official layout
    model.load_state_dict_explained(net, {'params': data['state']}, 'fixture')
    with torch.no_grad():
        sr = net(data['lr'].float() / 255 * rgb_range) / rgb_range
    assert sr.shape == data['sr'].shape
    assert torch.allclose(sr, data['sr'], atol=2e-5), (sr - data['sr']).abs().max()


def test_elan_against_the_live_official_file():
    text = official_ssl.ssl_repo_text('basicsr/archs/elan_arch.py')
    if text is None or importlib.util.find_spec('einops') is None:
        pytest.skip(f'set {official_ssl.ENV} to a ChrisDud0257/SSL snapshot and install einops')
    module = official_ssl.exec_official(text, 'ssl_elan_arch')
    args = make_args('--template', 'ELAN', '--scale', '4')
    ref = module.ELAN(scale=4).eval()                  # the official defaults = the template
    ours = model.Model(args, 'cpu').get_model().eval()
    state = official_ssl.random_state(ref.state_dict(), seed=4)
    state = {k: (ref.state_dict()[k] if k.endswith('shift_conv.weight') else v)
             for k, v in state.items()}
    ref.load_state_dict(state)
    model.load_state_dict_explained(ours, state, 'official')
    lr = torch.rand(1, 3, 18, 21)
    with torch.no_grad():
        expected = ref(lr)
        # 36 random blocks amplify a lot: compare relative to the output's scale
        err = (ours(lr * 255) / 255 - expected).abs().max() / expected.abs().max()
    assert err < 1e-5, err


def test_template_sizes_and_the_official_key_layout():
    args = make_args('--template', 'ELAN', '--scale', '4')
    net = model.Model(args, 'cpu').get_model()
    keys = list(net.state_dict())
    assert sum(k.endswith('gmsa_0.project_out.weight') for k in keys) == 36
    assert 'body.0.modules_lfe.lfe_0.conv0.shift_conv.weight' in keys
    assert 'body.35.modules_gmsa.gmsa_0.project_inp.1.norm.bias' in keys
    assert net.head[0].out_channels == 180 and net.tail[0].out_channels == 48
    light = model.Model(make_args('--template', 'ELAN_light', '--scale', '2'), 'cpu').get_model()
    assert len(light.body) == 24 and light.head[0].out_channels == 60


@pytest.mark.parametrize('wrapper', ['params', 'params_ema', None])
def test_basicsr_files_load_strictly(tmp_path, wrapper):
    data = FIXTURE['cases'][0]
    net = _ours(data['kwargs'])
    path = tmp_path / 'net_g.pth'
    torch.save(data['state'] if wrapper is None else {wrapper: data['state']}, path)
    model.load_state_dict_explained(net, torch.load(path, weights_only=True), str(path))
    for k, v in data['state'].items():
        assert torch.equal(net.state_dict()[k], v), k
    wrong = dict(data['state'])
    del wrong['tail.0.bias']
    with pytest.raises(utility.UserError, match='missing keys 1 .tail.0.bias'):
        model.load_state_dict_explained(net, {'params': wrong}, 'wrong')


def test_padding_is_the_official_reflection_and_works_below_the_window():
    x = torch.rand(1, 3, 20, 28)
    assert torch.equal(reflect_pad(x, 12, 4), torch.nn.functional.pad(x, (0, 4, 0, 12),
                                                                       mode='reflect'))
    net = _ours(FIXTURE['cases'][0]['kwargs']).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 3, 5) * 255).shape == (1, 3, 12, 20)


def test_elan_flags_are_refused_for_another_model(tmp_path):
    proc = run_main(['--model', 'EDSR', '--m_elan', '2', '--test_only'], exp_root=tmp_path)
    assert proc.returncode == 2 and '--m_elan does nothing' in proc.stderr


@pytest.mark.parametrize('case', range(len(FIXTURE['cases'])))
def test_cli_test_only_gives_the_official_images(tmp_path, case):
    """--template ELAN --pre_train FILE --test_only --save_results: every pixel within one
    8-bit level of the official network's output (BasicSR's tensor2img: clamp, x255, round)."""
    data = FIXTURE['cases'][case]
    kw, scale = data['kwargs'], data['kwargs']['scale']
    folder = tmp_path / 'data' / 'benchmark' / 'Fix'
    (folder / 'HR').mkdir(parents=True)
    (folder / 'LR_bicubic' / f'X{scale}').mkdir(parents=True)
    lr = data['lr'][0].permute(1, 2, 0).numpy()
    Image.fromarray(lr).save(folder / 'LR_bicubic' / f'X{scale}' / f'imgx{scale}.png')
    Image.fromarray(lr).resize((lr.shape[1] * scale, lr.shape[0] * scale)).save(
        folder / 'HR' / 'img.png')
    weights = tmp_path / 'net_g.pth'
    torch.save({'params': data['state']}, weights)
    proc = run_main(['--template', 'ELAN', '--scale', scale, '--m_elan', kw['m_elan'],
                     '--c_elan', kw['c_elan'], '--n_share', kw['n_share'],
                     '--pre_train', weights, '--test_only', '--save_results',
                     '--data_test', 'Fix', '--dir_data', tmp_path / 'data', '--n_threads', '0',
                     '--save', 'elan'], exp_root=tmp_path / 'exp')
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = sorted((tmp_path / 'exp' / 'elan' / 'results-Fix').glob('*.png'))
    assert len(saved) == 1, saved
    ours = np.asarray(Image.open(saved[0])).astype(np.int64)
    official = (data['sr'][0].clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()
    assert ours.shape == official.shape
    assert np.abs(ours - official).max() <= 1
