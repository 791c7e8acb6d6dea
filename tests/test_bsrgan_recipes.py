"""The pieces of the SSL paper's KAIR-based BSRGAN recipes: the LSGAN term, KAIR's U-Net
discriminator and RRDBNet file layouts, the templates BSRGAN_SSL and SwinIRGAN_BSRGAN_SSL
(one CPU iteration each from KAIR-layout files, evaluated on a mixed test set).

With ``SSL_OFFICIAL`` (see tests/reference/bsrgan_official.py) the official
``network_rrdbnet.py`` and ``network_discriminator.py`` are imported by path and compared."""
import json
import shutil
import sys
import types

import pytest
import torch
import torch.nn.functional as F

import loss
import option
import utility
from cli import REPO, assert_user_error, run_main
from conftest import tiny_benchmark
from discriminator._unet_sn import UNetDiscriminatorSN
from model import load_state_dict_explained
from model.rrdbnet import RRDBNet
from official_loader import exec_file, restored_modules

sys.path.insert(0, str(REPO / 'tests' / 'reference'))
import bsrgan_official  # noqa: E402

# KAIR's Discriminator_UNet(3, 64) state_dict, as network_discriminator.py builds it:
# conv0 and conv9 plain, conv1..conv8 under spectral_norm, no bias there.
KAIR_D_KEYS = (['conv0.weight', 'conv0.bias']
               + [f'conv{i}.{p}' for i in range(1, 9) for p in ('weight_orig', 'weight_u',
                                                                 'weight_v')]
               + ['conv9.weight', 'conv9.bias'])


def kair_rrdbnet_state(ours):
    """Our RRDBNet x4 state_dict under KAIR's network_rrdbnet.py names."""
    out = {}
    for k, v in ours.state_dict().items():
        parts = k.split('.')
        if parts[0] == 'body':                     # body.N.rdbK.convJ.w
            k = f'RRDB_trunk.{parts[1]}.RDB{parts[2][-1]}.{".".join(parts[3:])}'
        else:
            k = {'conv_body': 'trunk_conv', 'conv_up1': 'upconv1', 'conv_up2': 'upconv2',
                 'conv_hr': 'HRconv'}.get(parts[0], parts[0]) + '.' + '.'.join(parts[1:])
        out[k] = v.clone()
    return out


def _official_module(name, relative):
    root = bsrgan_official.root()
    if root is None:
        pytest.skip('SSL_OFFICIAL (the SSL snapshot) is not set')
    pkg = types.ModuleType('models')
    pkg.basicblock = types.ModuleType('models.basicblock')     # used by other classes only
    with restored_modules([name], {'models': pkg, 'models.basicblock': pkg.basicblock}):
        return exec_file(name, root / 'train_BSGRAN' / relative)


# ----------------------------------------------------------------------------- layouts
def test_kair_rrdbnet_layout_loads_and_gives_the_same_network():
    torch.manual_seed(0)
    src = RRDBNet(scale=4, n_feats=16, n_rrdb=2, growth=8, rgb_range=1)
    kair = kair_rrdbnet_state(src)
    assert 'RRDB_trunk.1.RDB3.conv5.weight' in kair and 'HRconv.bias' in kair
    dst = RRDBNet(scale=4, n_feats=16, n_rrdb=2, growth=8, rgb_range=1)
    load_state_dict_explained(dst, kair, '0_G.pth')
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(dst(x), src(x))
    with pytest.raises(utility.UserError, match='x4 only'):
        load_state_dict_explained(RRDBNet(scale=2, n_feats=16, n_rrdb=2, growth=8),
                                  kair_rrdbnet_state(src), '0_G.pth')


FIXTURE = REPO / 'tests' / 'data' / 'bsrgan_official.pt'   # reference/make_bsrgan_fixtures.py


def test_kair_networks_match_the_official_fixture():
    data = torch.load(FIXTURE, weights_only=True)
    weights, x, want = data['rrdbnet']
    ours = RRDBNet(scale=4, n_feats=8, n_rrdb=1, growth=4, rgb_range=1)
    load_state_dict_explained(ours, dict(weights), 'official RRDBNet')
    with torch.no_grad():
        assert torch.allclose(ours(x), want, atol=1e-6)
    weights, x, want = data['discriminator']
    d = UNetDiscriminatorSN(3, 4)
    load_state_dict_explained(d, dict(weights), 'official Discriminator_UNet')
    d.eval()
    with torch.no_grad():
        assert torch.allclose(d(x), want, atol=1e-6)


def test_kair_rrdbnet_is_the_official_network():
    official = _official_module('official_network_rrdbnet', 'models/network_rrdbnet.py')
    torch.manual_seed(1)
    ref = official.RRDBNet(in_nc=3, out_nc=3, nf=16, nb=2, gc=8, sf=4).eval()
    ours = RRDBNet(scale=4, n_feats=16, n_rrdb=2, growth=8, rgb_range=1)
    load_state_dict_explained(ours, ref.state_dict(), 'official')
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-6)


def test_our_unet_discriminator_has_kairs_layout():
    d = UNetDiscriminatorSN(3, 64)
    assert list(d.state_dict()) == KAIR_D_KEYS
    assert d.state_dict()['conv1.weight_orig'].shape == (128, 64, 4, 4)
    assert d.state_dict()['conv4.weight_orig'].shape == (256, 512, 3, 3)


def test_kair_discriminator_is_the_official_network():
    official = _official_module('official_network_discriminator',
                                'models/network_discriminator.py')
    torch.manual_seed(2)
    ref = official.Discriminator_UNet(input_nc=3, ndf=16)
    ours = UNetDiscriminatorSN(3, 16)
    assert list(ref.state_dict()) == list(ours.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.eval()
    ours.eval()
    x = torch.rand(2, 3, 32, 24)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-6)


# ----------------------------------------------------------------------------- LSGAN
def _args(*flags):
    return option.parse_args(['--patch_size', '32', *flags])


def test_lsgan_is_least_squares_and_loads_kair_d_files(tmp_path):
    torch.manual_seed(3)
    kair = UNetDiscriminatorSN(3, 64).state_dict()
    path = tmp_path / '10000_D.pth'
    torch.save(kair, path)                                    # KAIR: a plain state_dict
    term = loss.Loss(_args('--loss', '1*LSGAN', '--d_pre_train', str(path),
                           '--loss_range', '1')).terms['LSGAN']
    for k, v in kair.items():
        assert torch.equal(term.discriminator.state_dict()[k], v), k
    d0 = UNetDiscriminatorSN(3, 64)
    d0.load_state_dict(kair)
    # with --loss_range 1 the term is built for (and handed) images in [0, 1]
    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    sr = (hr + 0.05 * torch.randn(2, 3, 32, 32)).clamp(0, 1).requires_grad_()
    value = term(sr, hr)
    value.backward()
    # the discriminator's step: Adam on MSE(D(hr), 1) + MSE(D(sr), 0), as KAIR's two backwards
    opt = torch.optim.Adam(d0.parameters(), lr=1e-4, betas=(0.9, 0.999))
    opt.zero_grad()
    d_real, d_fake = d0(hr), d0(sr.detach())
    d_loss = (F.mse_loss(d_real, torch.ones_like(d_real))
              + F.mse_loss(d_fake, torch.zeros_like(d_fake)))
    d_loss.backward()
    opt.step()
    assert term.last_d_loss.item() == pytest.approx(d_loss.item(), rel=1e-5)
    d = term.discriminator
    for name, p in d0.named_parameters():                  # the same Adam step
        assert torch.allclose(dict(d.named_parameters())[name], p, atol=1e-6), name
    d.eval()        # spectral norm with the u, v of the generator pass (no further iteration)
    with torch.no_grad():
        scores = d(sr.detach())
    # the generator's term: MSE(D(sr), 1) after the update
    assert value.item() == pytest.approx(F.mse_loss(scores, torch.ones_like(scores)).item(),
                                         rel=1e-4)
    assert sr.grad.abs().sum() > 0
    wrong = tmp_path / 'vgg_d.pth'
    torch.save({'conv0_0.weight': torch.zeros(1)}, wrong)
    with pytest.raises(utility.UserError, match='does not fit UNetDiscriminatorSN'):
        loss.Loss(_args('--loss', '1*LSGAN', '--d_pre_train', str(wrong)))


# ----------------------------------------------------------------------------- templates
def test_templates_copy_the_json_files():
    a = option.parse_args(['--template', 'BSRGAN_SSL'])
    assert (a.model, a.n_rrdb, a.patch_size, a.batch_size, a.epochs, a.test_every) == (
        'RRDBNet', 23, 256, 48, 150, 1000)
    assert list(a.decay) == [40, 80] and a.ema_decay == 0.999 and a.degradation == 'bsrgan'
    assert a.loss_range == 1 and a.ssl_stride == 3 and a.ssl_kl == 1.0
    assert [(w, n) for w, n in a.loss_terms] == [(1.0, 'L1'), (1.0, 'PERCEPTUAL'),
                                                 (1.0, 'LSGAN'), (500.0, 'SSL')]
    s = option.parse_args(['--template', 'SwinIRGAN_BSRGAN_SSL'])
    assert (s.model, s.upsampler, s.embed_dim, s.batch_size, s.patch_size) == (
        'SwinIR', 'pixelshuffle', 180, 16, 256)
    assert s.epochs * s.test_every == 300000
    assert [m * s.test_every for m in s.decay] == [200000, 250000, 375000, 287500]
    assert option.parse_args(['--template', 'BSRGAN_SSL', '--batch_size', '2']).batch_size == 2
    e = option.parse_args(['--template', 'ELANGAN_BSRGAN_SSL'])
    assert (e.model, e.m_elan, e.c_elan, e.patch_size, e.batch_size) == ('ELAN', 36, 180, 192, 64)
    assert e.epochs * e.test_every == 300000 and e.loss_terms == a.loss_terms
    assert [m * e.test_every for m in e.decay] == [200000, 250000, 275000, 287500]


@pytest.fixture(scope='module')
def mixed(tmp_path_factory):
    """benchmark/Tiny with a mixed (mix, 2 versions) test set."""
    root = tiny_benchmark(tmp_path_factory.mktemp('mixed'),
                          [('butterfly.png', (64, 64, 128, 128), 'a.png'),
                           ('bird.png', (80, 80, 144, 144), 'b.png')])
    import degrade
    for k_seed in (0,):
        degrade.make_test_set(root, 'Tiny', 4, 'mix', k_seed, log=lambda *_: None, variants=2)
    return root


# Smaller trunks than the recipes' (23 RRDBs; 6 Swin stages of 6 blocks) keep the CPU run
# short; the layers and their names are the recipes'.
SMALLER = {'BSRGAN_SSL': ['--n_rrdb', '2'], 'ELANGAN_BSRGAN_SSL': ['--m_elan', '2'],
           'SwinIRGAN_BSRGAN_SSL': ['--depths', '2', '2', '--num_heads', '6', '6']}


def _kair_g(template, path):
    torch.manual_seed(5)
    if template == 'BSRGAN_SSL':
        state = kair_rrdbnet_state(RRDBNet(scale=4, n_feats=64, n_rrdb=2, growth=32))
    else:                      # KAIR saves basicsr's SwinIR / ELAN as a plain state_dict
        import model as model_pkg
        args = option.parse_args(['--template', template, '--cpu', *SMALLER[template]])
        state = model_pkg.Model(args, torch.device('cpu')).get_model().state_dict()
    torch.save(state, path)


@pytest.mark.slow
@pytest.mark.parametrize('template', ['BSRGAN_SSL', 'SwinIRGAN_BSRGAN_SSL', 'ELANGAN_BSRGAN_SSL'])
def test_template_trains_from_kair_files_and_tests_on_mixed_sets(template, mixed, tmp_path,
                                                                 vgg_file):
    g = tmp_path / '0_G.pth'
    _kair_g(template, g)
    d = tmp_path / '0_D.pth'
    torch.manual_seed(6)
    torch.save(UNetDiscriminatorSN(3, 64).state_dict(), d)
    exp = tmp_path / 'exp'
    common = ['--template', template, '--pre_train', g, '--d_pre_train', d,
              '--vgg_weights', vgg_file, '--patch_size', '64', '--batch_size', '2',
              '--test_every', '1', '--epochs', '1', '--data_train', 'Sample',
              '--data_test', 'Tiny', '--dir_data', mixed, '--test_degradation', 'mix',
              '--n_threads', '0', '--cpu', *SMALLER[template]]
    proc = run_main(common + ['--save', 'run'], exp_root=exp, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (exp / 'run' / 'log.txt').read_text()
    for term in ('L1', 'PERCEPTUAL', 'LSGAN', 'SSL'):
        assert f'{term}:' in log, term
    metrics = json.loads((exp / 'run' / 'metrics.json').read_text())
    manifest = json.loads((mixed / 'benchmark' / 'Tiny' / 'LR_mix' / 'X4' / 'manifest.json')
                          .read_text())
    sets = {k for k in metrics if k.startswith('Tiny')}       # beside '_lr_sets', 'protocol'
    assert sets == {'Tiny'} | {f'Tiny/{g}' for g in manifest['groups']}
    assert metrics['_lr_sets']['Tiny']['x4']['degradation'] == 'mix'     # the test sets' LR
    rows = (exp / 'run' / 'metrics.csv').read_text().splitlines()[1:]
    assert {r.split(',')[2] for r in rows} == {'a+0', 'a+1', 'b+0', 'b+1'}
    ckpt = torch.load(exp / 'run' / 'checkpoint.pt', weights_only=True)
    assert ckpt['iteration'] == 1 and ckpt['args']['degradation'] == 'bsrgan'
    wrong = tmp_path / 'vgg_d.pth'
    torch.save({'conv0_0.weight': torch.zeros(64, 3, 3, 3)}, wrong)
    bad = run_main([a if a != d else wrong for a in common] + ['--save', 'bad'], exp_root=exp)
    assert_user_error(bad, '--d_pre_train', 'does not fit UNetDiscriminatorSN')
    if template == 'BSRGAN_SSL':
        shutil.rmtree(exp / 'run', ignore_errors=True)
