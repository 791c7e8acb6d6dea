"""SPSR, BebyGAN and RankSRGAN (issue 30) against the official SSL repository's code.

The fixture tests/data/ssl_gan_recipes.pt holds official outputs (see
tests/reference/make_ssl_gan_fixtures.py); with SSL_OFFICIAL set to a checkout of
ChrisDud0257/SSL the same comparisons also run against the live official code.
"""
import pytest
import torch

import official_ssl_gan as official
from conftest import make_args

FIX = official.fixture()


def official_file(tmp_path, name, wrap=None):
    """The fixture's random weights for generator ``name`` saved in its released layout."""
    entry = FIX[name]
    state = official.seeded_weights(entry['layout'], entry['seed'], entry['gain'],
                                    entry['shift'])
    path = tmp_path / f'{name}.pth'
    torch.save({wrap: state} if wrap else state, path)
    return path


# --model, its flags, the released file's wrapper ('params' for BasicSR, none for mmsr)
GENERATORS = {
    'spsr': (['--model', 'SPSR'], 'params'),
    'bebygan': (['--model', 'RRDBNet'], None),
    'ranksrgan': (['--model', 'RankSRGAN'], None),
}


def _eval_sr(tmp_path, name):
    import model
    flags, wrap = GENERATORS[name]
    path = official_file(tmp_path, name, wrap)
    args = make_args(*flags, '--scale', '4', '--pre_train', path, '--test_only',
                     '--rgb_range', '255')
    net = model.Model(args).eval()
    with torch.no_grad():
        return net(FIX['lr'] * 255)


def _levels(x):
    return (x.clamp(0, 1) * 255).round()


@pytest.mark.parametrize('name', sorted(GENERATORS))
def test_generator_from_released_layout_equals_official_within_one_level(tmp_path, name):
    sr = _eval_sr(tmp_path, name) / 255
    ref = FIX[name]['sr']
    assert sr.shape == ref.shape
    assert (_levels(sr) - _levels(ref)).abs().max() <= 1
    assert (sr - ref).abs().max() < 1e-4


def test_spsr_training_outputs_equal_the_official_three(tmp_path):
    import model
    path = official_file(tmp_path, 'spsr', 'params')
    args = make_args('--model', 'SPSR', '--scale', '4', '--pre_train', path, '--rgb_range', '1')
    net = model.Model(args).train()
    with torch.no_grad():
        out = net(FIX['lr'])
    for key in ('sr', 'grad_branch', 'grad_lr'):
        assert torch.allclose(out[key], FIX['spsr'][key], atol=1e-4), key


@pytest.mark.skipif(official.official_root() is None, reason='SSL_OFFICIAL is not set')
@pytest.mark.parametrize('name', sorted(GENERATORS))
def test_generator_equals_the_live_official_network(tmp_path, name):
    from reference.make_ssl_gan_fixtures import GENERATORS as SPEC
    arch, cls, kwargs, *_ = SPEC[name]
    net = getattr(official.load_arch(official.official_root(), arch), cls)(**kwargs)
    entry = FIX[name]
    net.load_state_dict(official.seeded_weights(entry['layout'], entry['seed'], entry['gain'],
                                                entry['shift']))
    with torch.no_grad():
        ref = net.eval()(FIX['lr'])
    ref = ref[1] if isinstance(ref, tuple) else ref
    assert torch.allclose(_eval_sr(tmp_path, name) / 255, ref, atol=1e-4)


def test_file_of_another_layout_is_refused_with_one_line(tmp_path):
    import model
    import utility
    path = official_file(tmp_path, 'ranksrgan')
    args = make_args('--model', 'SPSR', '--scale', '4', '--pre_train', path, '--test_only')
    with pytest.raises(utility.UserError, match='does not fit SPSRNet'):
        model.Model(args)
