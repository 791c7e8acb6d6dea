"""src/discriminator/: every network, its official definition, --discriminator and
--d_pre_train (strict loading, refusals), and the GAN-type terms that use them."""
from pathlib import Path

import pytest
import torch

import discriminator
import loss
import official_ssl
import utility
from cli import assert_user_error, run_main
from conftest import TINY, make_args
from discriminator._vgg_style import VGGStyleDiscriminator

DATA = Path(__file__).resolve().parent / 'data'
# The HR patch each entry takes (vgg: any >= 32; unet: multiples of 8).
PATCH = {'vgg': 48, 'vgg128': 128, 'vgg192': 192, 'vgg256': 256, 'unet': 40}


def _basicsr_discriminators():
    text = official_ssl.basicsr_text('archs/discriminator_arch.py')
    if text is None:
        pytest.skip('basicsr (pip install --no-deps basicsr) is not installed')
    return official_ssl.exec_official(text, 'basicsr_discriminator_arch')


def _args(name, *flags, loss_string='1*GAN'):
    return make_args('--patch_size', PATCH[name], '--loss', loss_string,
                     '--discriminator', name, *flags)


def test_registry_lists_every_entry():
    assert set(discriminator.available()) >= set(PATCH)
    with pytest.raises(utility.UserError, match='unknown --discriminator .*vgg192'):
        discriminator.make_discriminator(_args('vgg'), 'vgg999')


@pytest.mark.parametrize('name', sorted(PATCH))
def test_each_discriminator_judges_its_patch(name):
    net = discriminator.make_discriminator(_args(name), name)
    side = PATCH[name]
    x = torch.rand(2, 3, side, side, requires_grad=True)
    out = net(x)
    assert out.shape == ((2, 1, side, side) if name == 'unet' else (2, 1))
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize('name, patch', [('vgg128', 96), ('vgg192', 128), ('vgg256', 192),
                                         ('unet', 36), ('vgg', 16)])
def test_a_patch_the_head_cannot_take_is_refused(name, patch):
    args = make_args('--patch_size', patch, '--loss', '1*RGAN', '--discriminator', name)
    with pytest.raises(utility.UserError, match=f'--discriminator {name} takes'):
        loss.Loss(args)


@pytest.mark.parametrize('name, size', [('vgg128', 128), ('vgg256', 256)])
def test_vgg_style_is_basicsrs(name, size):
    ref = _basicsr_discriminators().VGGStyleDiscriminator(3, 64, input_size=size)
    ours = discriminator.make_discriminator(_args(name), name)
    assert list(ours.state_dict()) == list(ref.state_dict())
    state = official_ssl.random_state(ref.state_dict(), seed=size)
    ref.load_state_dict(state)
    ours.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for mode in ('eval', 'train'):
            getattr(ref, mode)()
            getattr(ours, mode)()
            assert torch.allclose(ours(x), ref(x), rtol=1e-4, atol=1e-5), mode


def test_default_vgg_keeps_the_keys_of_earlier_runs_and_is_vgg128_at_128():
    """Checkpoints of GAN/RGAN runs made before the registry hold BasicSR's VGG128 keys under
    terms.<TYPE>.discriminator: the default 'vgg' keeps them, so those runs resume."""
    ref = _basicsr_discriminators().VGGStyleDiscriminator(3, 64)
    state = official_ssl.random_state(ref.state_dict(), seed=3)
    ref.load_state_dict(state)
    args = make_args('--patch_size', 128, '--loss', '1*RGAN')
    composite = loss.Loss(args)
    keys = [k for k in composite.state_dict() if k.startswith('terms.RGAN.discriminator.')]
    assert [k.split('discriminator.', 1)[1] for k in keys] == list(ref.state_dict())
    ours = composite.terms['RGAN'].discriminator
    ours.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), ref.eval()(x), rtol=1e-4, atol=1e-5)


def _check_vgg192_against(fixture):
    ours = VGGStyleDiscriminator(3, fixture['kwargs']['nf'], n_stages=6, input_size=192)
    ours.load_state_dict(fixture['state'], strict=True)
    x = fixture['image'].float() / 255
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), fixture['out_eval'], rtol=1e-4, atol=1e-5)
        assert torch.allclose(ours.train()(x), fixture['out_train'], rtol=1e-4, atol=1e-5)


def test_vgg192_is_the_ssl_repositorys_discriminator_vgg_192():
    fixture = torch.load(DATA / 'ssl_vgg192.pt', weights_only=True)
    _check_vgg192_against(fixture)
    # the registry entry has the official layout at nf 64
    net = discriminator.make_discriminator(_args('vgg192'), 'vgg192')
    assert net.linear1.in_features == 512 * 3 * 3
    assert list(net.state_dict())[-4:] == ['linear1.weight', 'linear1.bias',
                                           'linear2.weight', 'linear2.bias']


def test_vgg192_against_the_live_official_file():
    text = official_ssl.ssl_repo_text('basicsr/archs/discriminator_arch.py')
    if text is None:
        pytest.skip(f'set {official_ssl.ENV} to a ChrisDud0257/SSL snapshot')
    module = official_ssl.exec_official(text, 'ssl_discriminator_arch')
    ref = module.Discriminator_VGG_192(in_chl=3, nf=64)
    net = discriminator.make_discriminator(_args('vgg192'), 'vgg192')
    assert list(net.state_dict()) == list(ref.state_dict())
    state = official_ssl.random_state(ref.state_dict(), seed=5)
    ref.load_state_dict(state)
    net.load_state_dict(state)
    x = torch.rand(2, 3, 192, 192)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), ref.eval()(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('wrapper', ['params', 'params_ema', None])
@pytest.mark.parametrize('name', ['vgg128', 'vgg192', 'vgg256', 'unet'])
def test_d_pre_train_loads_strictly_into_the_chosen_network(tmp_path, name, wrapper):
    source = discriminator.make_discriminator(_args(name), name)
    state = official_ssl.random_state(source.state_dict(), seed=7)
    path = tmp_path / 'net_d.pth'
    torch.save(state if wrapper is None else {wrapper: state}, path)
    term_type = 'UGAN' if name == 'unet' else 'RGAN'
    term = loss.Loss(_args(name, '--d_pre_train', path,
                           loss_string=f'1*{term_type}')).terms[term_type]
    for key, value in state.items():
        assert torch.equal(term.discriminator.state_dict()[key], value), key


def test_d_pre_train_of_another_layout_is_refused(tmp_path):
    vgg128 = discriminator.make_discriminator(_args('vgg128'), 'vgg128')
    path = tmp_path / 'esrgan_net_d.pth'
    torch.save({'params': vgg128.state_dict()}, path)
    for name in ('vgg192', 'vgg256', 'unet'):
        with pytest.raises(utility.UserError) as info:
            loss.Loss(_args(name, '--d_pre_train', path))
        message = str(info.value)
        assert f'not a {name} discriminator' in message and '\n' not in message
        assert 'linear1.weight' in message or 'missing keys' in message


def test_ugan_is_gan_with_the_unet_discriminator():
    hr = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(1)) * 255
    sr = hr + 10 * torch.randn(2, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    values = []
    for flags in (['--loss', '1*UGAN'], ['--loss', '1*GAN', '--discriminator', 'unet'],
                  ['--loss', '1*UGAN', '--discriminator', 'unet']):
        torch.manual_seed(0)
        term = loss.Loss(make_args('--patch_size', 40, *flags)).terms[flags[1][2:]]
        values.append(term(sr, hr).item())
    assert values[0] == values[1] == values[2]
    with pytest.raises(utility.UserError, match='UGAN is GAN with --discriminator unet'):
        loss.Loss(make_args('--patch_size', 128, '--loss', '1*UGAN',
                            '--discriminator', 'vgg128'))


def test_discriminator_flags_are_refused_without_a_gan_term(tmp_path):
    for flags, flag in ((['--discriminator', 'vgg128'], '--discriminator'),
                        (['--d_pre_train', str(tmp_path / 'd.pth')], '--d_pre_train')):
        proc = run_main(['--loss', '1*L1', *flags, '--test_only'], exp_root=tmp_path)
        assert_user_error(proc, f'{flag} does nothing', 'GAN', 'RGAN', 'UGAN')


def test_cli_refuses_a_discriminator_file_of_another_layout(tmp_path, tiny_data):
    vgg128 = discriminator.make_discriminator(_args('vgg128'), 'vgg128')
    path = tmp_path / 'esrgan_net_d.pth'
    torch.save({'params': vgg128.state_dict()}, path)
    proc = run_main([*TINY, '--scale', '4', '--patch_size', '192', '--loss', '1*L1+0.1*RGAN',
                     '--discriminator', 'vgg192', '--d_pre_train', path, '--epochs', '1',
                     '--data_train', 'Sample', '--data_test', 'Tiny', '--dir_data', tiny_data,
                     '--save', 'refused'], exp_root=tmp_path)
    assert_user_error(proc, f'--d_pre_train {path} does not fit', 'not a vgg192 discriminator')
