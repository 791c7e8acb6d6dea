"""The Model wrapper: scale checks, explained loading, --pre_train, --chop, --self_ensemble."""
import copy
import re
import urllib.error

import pytest
import torch
import torch.nn as nn

import model
import option
import utility
from imresize import imresize

TINY = ['--n_resblocks', '2', '--n_feats', '8', '--cpu']


def _args(*flags):
    return option.parse_args(list(flags) + TINY)


def _edsr(scale=2, **changes):
    args = _args('--model', 'EDSR', '--scale', str(scale))
    return model.Model(args.replace(**changes), 'cpu')


def _randomised_state(net, seed=3):
    """The net's state_dict with every float entry replaced by random values."""
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone()
            for k, v in net.state_dict().items()}


def _same_weights(net, weights):
    state = net.state_dict()
    return state.keys() == weights.keys() and all(torch.equal(state[k], v)
                                                  for k, v in weights.items())


# ----------------------------------------------------------------------------- scales

def test_single_scale_model_refuses_several_scales():
    with pytest.raises(utility.UserError, match='one scale per network'):
        model.Model(_args('--model', 'EDSR', '--scale', '2+3'), 'cpu')


@pytest.mark.parametrize('name,scale', [('SRResNet', 3), ('EDSR', 5), ('MDSR', 8)])
def test_unsupported_scale_is_a_user_error(name, scale):
    with pytest.raises(utility.UserError, match=f'not {scale}'):
        model.Model(_args('--model', name, '--scale', str(scale)), 'cpu')


# ----------------------------------------------------------------------------- loading

def test_mismatch_lists_missing_unexpected_and_wrong_shape_keys():
    net = _edsr().get_model()
    state = net.state_dict()
    del state['tail.1.bias']
    state['extra.weight'] = torch.zeros(1)
    state['head.0.weight'] = torch.zeros(8, 3, 5, 5)
    with pytest.raises(utility.UserError) as err:
        model.load_state_dict_explained(net, state, 'weights.pt')
    message = str(err.value)
    assert message.startswith('weights.pt does not fit EDSR')
    assert 'missing keys 1 (tail.1.bias)' in message
    assert 'unexpected keys 1 (extra.weight)' in message
    assert 'head.0.weight [8, 3, 5, 5] vs [8, 3, 3, 3]' in message
    assert '\n' not in message


def test_long_mismatch_is_summarised_on_one_line():
    edsr = _edsr().get_model().state_dict()
    rcan = model.make_net(_args('--model', 'RCAN', '--scale', '2', '--n_resgroups', '2'))
    with pytest.raises(utility.UserError) as err:
        model.load_state_dict_explained(rcan, edsr, 'edsr.pt')
    message = str(err.value)
    assert ' more' in message and '\n' not in message and len(message) < 1000


@pytest.mark.parametrize('wrap', ['module', 'compiled', 'checkpoint', 'state_dict', 'basicsr'])
def test_prefixes_and_wrapping_dicts_are_accepted(wrap):
    net = _edsr().get_model()
    weights = _randomised_state(net)
    given = {
        'module': lambda w: {'module.' + k: v for k, v in w.items()},
        'compiled': lambda w: {'_orig_mod.module.' + k: v for k, v in w.items()},
        'checkpoint': lambda w: {'model': w, 'epoch': 7, 'optimizer': {'state': {}}},
        'state_dict': lambda w: {'state_dict': {'module.' + k: v for k, v in w.items()}},
        'basicsr': lambda w: {'params': {}, 'params_ema': w},
    }[wrap](weights)
    model.load_state_dict_explained(net, given, 'weights')
    assert _same_weights(net, weights)


def test_pre_train_path_loads_the_file(tmp_path):
    weights = _randomised_state(_edsr().get_model())
    path = tmp_path / 'model_best.pt'
    torch.save({'model': weights, 'epoch': 3}, path)
    wrapper = _edsr(pre_train=str(path))
    assert _same_weights(wrapper.get_model(), weights)
    assert wrapper.loaded_from == f'--pre_train {path}'


class _NotWeights:
    pass


@pytest.mark.parametrize('content,expected', [
    (None, 'no such file'),
    (b'certainly not a torch file', 'cannot be read as plain weights'),
    ({'epoch': 3}, 'holds no state_dict'),
    ({'model': _NotWeights()}, 'cannot be read as plain weights'),
])
def test_bad_pre_train_file_is_one_line_user_error(tmp_path, content, expected):
    path = tmp_path / 'weights.pt'
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(utility.UserError, match=expected) as err:
        _edsr(pre_train=str(path))
    assert '\n' not in str(err.value) and str(path) in str(err.value)


def test_download_offline_is_one_line_user_error(monkeypatch, tmp_path):
    def offline(url, dst, **kwargs):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')
    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    monkeypatch.setattr(model, 'PRETRAINED_DIR', tmp_path)
    args = option.parse_args(['--model', 'EDSR', '--scale', '2', '--pre_train', 'download'])
    with pytest.raises(utility.UserError) as err:
        model.Model(args, 'cpu')
    message = str(err.value)
    assert 'edsr_baseline_x2-1bc95232.pt' in message and 'name resolution' in message
    assert '--pre_train PATH' in message and '\n' not in message


def test_download_uses_the_cache_without_network(monkeypatch, tmp_path):
    """A file already in .cache/pretrained under the URL's name is loaded, strictly."""
    monkeypatch.setattr(model, 'PRETRAINED_DIR', tmp_path)
    args = option.parse_args(['--model', 'EDSR', '--scale', '4', '--pre_train', 'download'])
    weights = _randomised_state(model.make_net(args.replace(pre_train='')))
    torch.save(weights, tmp_path / 'edsr_baseline_x4-6b446fab.pt')
    assert _same_weights(model.Model(args, 'cpu').get_model(), weights)


@pytest.mark.parametrize('flags,expected', [
    (['--model', 'EDSR', '--scale', '2', '--n_feats', '32'], 'r16f64x2'),
    (['--model', 'MDSR', '--scale', '2'], '--scale 2+3+4'),
    (['--model', 'RCAN', '--scale', '2'], 'yulunzhang/RCAN'),
    (['--model', 'VDSR', '--scale', '2'], 'no published weights'),
])
def test_download_without_published_weights_says_so(flags, expected):
    args = option.parse_args(flags + ['--n_resgroups', '1', '--pre_train', 'download'])
    with pytest.raises(utility.UserError, match=re.escape(expected)):
        model.Model(args, 'cpu')


def test_state_dict_has_the_bare_network_layout(tmp_path):
    wrapper = _edsr()
    bare_keys = list(wrapper.get_model().state_dict())
    assert list(wrapper.state_dict()) == bare_keys
    assert bare_keys[:3] == ['sub_mean.weight', 'sub_mean.bias', 'add_mean.weight']

    weights = _randomised_state(wrapper.get_model())
    wrapper.load_state_dict(weights)
    assert _same_weights(wrapper.get_model(), weights)
    # As Experiment.save_weights writes model_latest.pt:
    utility.atomic_torch_save(wrapper.state_dict(), tmp_path / 'model_latest.pt')
    assert _same_weights(_edsr().load(tmp_path / 'model_latest.pt').get_model(), weights)

    # Nested (as under DDP) the keys keep the bare layout below the outer prefix.
    outer = nn.Sequential(wrapper)
    assert list(outer.state_dict()) == ['0.' + k for k in bare_keys]
    other = nn.Sequential(_edsr())
    other.load_state_dict(outer.state_dict())
    assert _same_weights(other[0].get_model(), weights)
    # An EMA copy is made with deepcopy.
    assert list(copy.deepcopy(wrapper).state_dict()) == bare_keys


# ----------------------------------------------------------------------------- inference

def _chop_pair(flags, chop_size, shave):
    """The same network twice (rgb_range 1, eval): untiled and with --chop."""
    torch.manual_seed(0)
    args = option.parse_args(flags + TINY + ['--rgb_range', '1'])
    plain = model.Model(args, 'cpu').eval()
    tiled = model.Model(args.replace(chop=True, chop_size=chop_size), 'cpu').eval()
    tiled.load_state_dict(plain.state_dict())
    tiled.chop_shave = shave
    return plain, tiled


# (flags, scale index, LR size, chop_size, overlap).  With 2 blocks of 8 features the
# receptive field of EDSR and VDSR is under 10 LR pixels, MDSR's (two 5x5 blocks per
# scale more) under 16: within the overlap, so tiling must not change the output beyond
# float rounding.  67x61 with chop_size 1000 needs two levels of tiles; 45x41 one.
CHOP_CASES = {
    'edsr-x2': (['--model', 'EDSR', '--scale', '2'], 0, (45, 41), 600, 10),
    'edsr-x3-two-levels': (['--model', 'EDSR', '--scale', '3'], 0, (67, 61), 1000, 10),
    'edsr-x4': (['--model', 'EDSR', '--scale', '4'], 0, (45, 41), 600, 10),
    'mdsr-x3': (['--model', 'MDSR', '--scale', '2+3+4'], 1, (67, 61), 2000, 16),
    'vdsr-x3': (['--model', 'VDSR', '--scale', '3'], 0, (45, 41), 600, 10),
    'bicubic-x4': (['--model', 'Bicubic', '--scale', '4'], 0, (45, 41), 600, 10),
}


@pytest.mark.parametrize('case', sorted(CHOP_CASES))
def test_chop_equals_untiled_forward(case):
    flags, idx, size, chop_size, shave = CHOP_CASES[case]
    plain, tiled = _chop_pair(flags, chop_size, shave)
    lr = torch.rand(1, 3, *size)
    with torch.no_grad():
        expected, got = plain(lr, idx), tiled(lr, idx)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 1e-5


def test_chop_recurses_until_tiles_are_small_enough():
    seen = []

    def record(x):
        seen.append(tuple(x.shape[-2:]))
        return imresize(x, scale=3)

    lr = torch.rand(1, 3, 67, 61)
    out = model.forward_tiled(record, lr, scale=3, max_area=1000, shave=10)
    # 67x61 -> 44x41 tiles (still > 1000 pixels) -> 16 tiles of at most 32x31.
    assert len(seen) == 16 and max(h * w for h, w in seen) <= 1000
    assert (out - imresize(lr, scale=3)).abs().max() < 1e-4
    # A tile too small to cut with this overlap is run whole, whatever the limit.
    seen.clear()
    model.forward_tiled(record, lr[..., :30, :30], scale=3, max_area=10, shave=10)
    assert seen == [(30, 30)]


def test_self_ensemble_is_equivariant_and_not_the_plain_output():
    torch.manual_seed(0)
    args = option.parse_args(['--model', 'EDSR', '--scale', '2', '--rgb_range', '1'] + TINY)
    plain = model.Model(args, 'cpu').eval()
    ensemble = model.Model(args.replace(self_ensemble=True), 'cpu').eval()
    ensemble.load_state_dict(plain.state_dict())
    lr = torch.rand(1, 3, 11, 14)
    with torch.no_grad():
        out = ensemble(lr, 0)
        assert out.shape == (1, 3, 22, 28)
        assert (out - plain(lr, 0)).abs().max() > 1e-4
        for op in (lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.transpose(-2, -1)):
            assert (ensemble(op(lr), 0) - op(out)).abs().max() < 1e-5
        # Chopping inside the ensemble changes nothing either.
        both = model.Model(args.replace(self_ensemble=True, chop=True, chop_size=200), 'cpu')
        both.load_state_dict(plain.state_dict())
        assert (both.eval()(lr, 0) - out).abs().max() < 1e-5


def test_training_mode_ignores_chop_and_ensemble():
    torch.manual_seed(0)
    args = option.parse_args(['--model', 'EDSR', '--scale', '2'] + TINY)
    plain = model.Model(args, 'cpu')
    fancy = model.Model(args.replace(self_ensemble=True, chop=True, chop_size=16), 'cpu')
    fancy.load_state_dict(plain.state_dict())
    lr = torch.rand(2, 3, 40, 40) * 255
    assert torch.equal(fancy.train()(lr, 0), plain.train()(lr, 0))


def test_input_large_model_gets_bicubic_upsampled_input():
    """VDSR with its last conv zeroed outputs exactly its (imresize-upsampled) input."""
    args = _args('--model', 'VDSR', '--scale', '2+3')
    wrapper = model.Model(args, 'cpu').eval()
    with torch.no_grad():
        wrapper.get_model().body[-1][0].weight.zero_()
        lr = torch.rand(1, 3, 7, 9) * 255
        for idx, s in enumerate((2, 3)):
            assert (wrapper(lr, idx) - imresize(lr, scale=s)).abs().max() < 1e-3
