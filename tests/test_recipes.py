"""The GAN recipes of the SSL paper (src/template.py): each weighs its terms as the official
recipe does, at --rgb_range 255 and 1.

Official terms come from BasicSR's own definitions (pip ``basicsr``, executed by file:
L1Loss, PerceptualLoss with the VGG19 of a stand-in torchvision holding the same random
weights as --vgg_weights, GANLoss, get_refined_artifact_map), combined as the SSL
repository's models combine them (e.g. esrganssl_model.py: relativistic average with the
real logits detached; ldlssl_model.py: L1(M * sr, M * hr)); the SSL terms come from a
fixture of the repository's own code (tests/reference/make_ssl_fixtures.py).
"""
import copy
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import loss
import official_ssl
from conftest import make_args

DATA = Path(__file__).resolve().parent / 'data'
FIVE_LAYERS = {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1.0, 'conv4_4': 1.0, 'conv5_4': 1.0}
# Each recipe's official generator terms (from its YAML and model file, see template.py).
RECIPES = {
    'ESRGAN_SSL': dict(patch=128, pixel=1e-2, layers={'conv5_4': 1.0}, gan=5e-3, ragan=True),
    'LDL_SSL': dict(patch=128, pixel=1e-2, layers=FIVE_LAYERS, gan=5e-3, ragan=True, ldl=1.0),
    'ELANGAN_SSL': dict(patch=192, pixel=1e-2, layers={'conv5_4': 1.0}, gan=5e-3, ragan=True),
    'SwinIRGAN_SSL': dict(patch=256, pixel=1e-2, layers={'conv5_4': 1.0}, gan=5e-3,
                          ragan=True),
    'RealESRGAN_SSL': dict(patch=256, pixel=1.0, layers=FIVE_LAYERS, gan=0.1, ragan=False),
}


def _vgg19_features():
    layers, in_ch = [], 3
    for v in (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
              512, 512, 512, 512, 'M'):
        if v == 'M':
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU(inplace=True)]
            in_ch = v
    return nn.Sequential(*layers)


@pytest.fixture(scope='module')
def basicsr_losses(vgg_file):
    """BasicSR's basic_loss.py and gan_loss.py, its VGG19 reading ``vgg_file``."""
    texts = {name: official_ssl.basicsr_text(f'{name}.py') for name in
             ('losses/loss_util', 'losses/basic_loss', 'losses/gan_loss', 'archs/vgg_arch')}
    if None in texts.values():
        pytest.skip('basicsr (pip install --no-deps basicsr) is not installed')
    state = torch.load(vgg_file, weights_only=True)

    def vgg19(pretrained=False):
        net = types.SimpleNamespace(features=_vgg19_features())
        net.features.load_state_dict({k[len('features.'):]: v for k, v in state.items()
                                      if k.startswith('features.')})
        return net

    vgg = official_ssl.stub('torchvision.models.vgg', vgg19=vgg19)
    tv = {'torchvision': official_ssl.stub('torchvision'),
          'torchvision.models': official_ssl.stub('torchvision.models', vgg=vgg),
          'torchvision.models.vgg': vgg}
    util = official_ssl.exec_official(texts['losses/loss_util'], 'basicsr.losses.loss_util')
    vgg_arch = official_ssl.exec_official(texts['archs/vgg_arch'], 'basicsr.archs.vgg_arch', tv)
    basic = official_ssl.exec_official(texts['losses/basic_loss'], 'basicsr.losses.basic_loss',
                                       {'basicsr.losses.loss_util': util,
                                        'basicsr.archs.vgg_arch': vgg_arch})
    gan = official_ssl.exec_official(texts['losses/gan_loss'], 'basicsr.losses.gan_loss')
    return types.SimpleNamespace(basic=basic, gan=gan, util=util)


def official_terms(recipe, sr, hr, sr_ema, net_d, lib):
    """{TYPE: weighted value} of the official generator terms (all but SSL), on [0, 1]."""
    spec = RECIPES[recipe]
    out = {'L1': lib.basic.L1Loss(loss_weight=spec['pixel'])(sr, hr)}
    percep = lib.basic.PerceptualLoss(layer_weights=spec['layers'], vgg_type='vgg19',
                                      use_input_norm=True, range_norm=False,
                                      perceptual_weight=1.0, style_weight=0., criterion='l1')
    out['VGG54' if spec['layers'] == {'conv5_4': 1.0} else 'PERCEPTUAL'] = percep(sr, hr)[0]
    cri_gan = lib.gan.GANLoss('vanilla', real_label_val=1.0, fake_label_val=0.0,
                              loss_weight=spec['gan'])
    fake = net_d(sr)
    if spec['ragan']:
        real = net_d(hr).detach()
        out['RGAN'] = (cri_gan(real - torch.mean(fake), False, is_disc=False)
                       + cri_gan(fake - torch.mean(real), True, is_disc=False)) / 2
    else:
        out['UGAN'] = cri_gan(fake, True, is_disc=False)
    if 'ldl' in spec:
        weight = lib.util.get_refined_artifact_map(hr, sr, sr_ema, 7)
        out['LDL'] = lib.basic.L1Loss(loss_weight=spec['ldl'])(weight * sr, weight * hr)
    return out


def _images(side, seed):
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(2, 3, side // 16, side // 16, generator=gen)
    hr = torch.nn.functional.interpolate(base, size=(side, side), mode='bicubic',
                                         align_corners=False).clamp(0, 1)
    hr = (hr * 255).round() / 255
    sr = (hr + 0.05 * torch.randn(hr.shape, generator=gen)).clamp(0, 1)
    sr_ema = (hr + 0.04 * torch.randn(hr.shape, generator=gen)).clamp(0, 1)
    return sr, hr, sr_ema


@pytest.mark.slow   # VGG19 on 128-256 pixel patches, official and ours, at two ranges
@pytest.mark.parametrize('recipe', sorted(RECIPES))
def test_recipe_weighs_its_terms_as_the_official_one(recipe, vgg_file, basicsr_losses):
    spec = RECIPES[recipe]
    sr01, hr01, ema01 = _images(spec['patch'], seed=len(recipe))
    fixture = torch.load(DATA / 'ssl_loss.pt', weights_only=True)
    totals = []
    for rgb_range in (255, 1):
        # --lr 0: the discriminator's update in the term leaves its weights as they are, so
        # the generator terms are computed with the network the official code would use.
        args = make_args('--template', recipe, '--rgb_range', rgb_range,
                         '--vgg_weights', vgg_file, '--lr', 0)
        composite = loss.Loss(args).train()
        gan_type = 'RGAN' if spec['ragan'] else 'UGAN'
        net = composite.terms[gan_type].discriminator
        net.load_state_dict(official_ssl.random_state(net.state_dict(), seed=9))
        sr = (sr01 * rgb_range).requires_grad_()
        inputs = {'sr_ema': ema01 * rgb_range} if 'LDL' in composite.terms else {}
        # SSL is checked on the fixture's pair below; leave it out of this forward
        ssl_term = composite.terms.pop('SSL')
        composite(sr, hr01 * rgb_range, **inputs)
        ours = composite.last()
        # the official step sees the discriminator as the term left it (spectral-norm
        # vectors after its updates); BatchNorm networks judge on batch statistics
        official_d = copy.deepcopy(net)
        has_bn = any(isinstance(m, nn.BatchNorm2d) for m in official_d.modules())
        official_d.train(has_bn)
        with torch.no_grad():
            expected = official_terms(recipe, sr01, hr01, ema01, official_d, basicsr_losses)
        assert set(expected) == set(ours) - {'Total'}, (sorted(expected), sorted(ours))
        for name, value in expected.items():
            assert ours[name] == pytest.approx(value.item(), rel=2e-4, abs=1e-7), (
                recipe, rgb_range, name)
        # SSL: the recipe's settings give the official weighted value
        scale = composite.factor * rgb_range
        value = composite.weights['SSL'] * ssl_term(fixture['sr'] * scale,
                                                    fixture['hr'].float() / 255 * scale)
        assert value.item() == pytest.approx(fixture['value'].item(), rel=1e-4)
        totals.append(ours['Total'] + value.item())
    assert totals[0] == pytest.approx(totals[1], rel=1e-4)


def test_ssl_fixture_against_the_live_official_code():
    text = official_ssl.ssl_repo_text('basicsr/losses/loss_util.py')
    if text is None:
        pytest.skip(f'set {official_ssl.ENV} to a ChrisDud0257/SSL snapshot')
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent / 'reference'))
    import make_ssl_fixtures
    fixture = torch.load(DATA / 'ssl_loss.pt', weights_only=True)
    value = make_ssl_fixtures.official_ssl_term(None, fixture['hr'].float() / 255, fixture['sr'])
    assert value.item() == pytest.approx(fixture['value'].item(), rel=1e-5)


# Small generators in the official layout (the recipe's network shape, fewer blocks), so a
# training iteration at the recipe's own patch size (the discriminator's input) stays short.
SMALL_GENERATOR = {
    'ESRGAN_SSL': ['--n_rrdb', 1, '--n_feats', 8, '--rrdb_growth', 4],
    'LDL_SSL': ['--n_rrdb', 1, '--n_feats', 8, '--rrdb_growth', 4],
    'RealESRGAN_SSL': ['--n_rrdb', 1, '--n_feats', 8, '--rrdb_growth', 4,
                       '--degradation_pool', 2],
    'ELANGAN_SSL': ['--m_elan', 2, '--c_elan', 12],
    'SwinIRGAN_SSL': ['--depths', 2, '--num_heads', 2, '--embed_dim', 12],
}


@pytest.mark.slow
@pytest.mark.parametrize('recipe', sorted(RECIPES))
def test_recipe_trains_from_official_layout_files(recipe, tmp_path, tiny_data, vgg_file):
    """One iteration through the CLI from a generator file ({'params': ...}) and a
    discriminator file in the recipe's official layouts; batch 2, SSL windows 11/5."""
    import discriminator
    import model
    from cli import run_main
    small = SMALL_GENERATOR[recipe]
    args = make_args('--template', recipe, *small, '--vgg_weights', vgg_file)
    net_g = model.Model(args, 'cpu').get_model()
    g_file, d_file = tmp_path / 'net_g.pth', tmp_path / 'net_d.pth'
    torch.save({'params': official_ssl.random_state(net_g.state_dict(), seed=1)}, g_file)
    net_d = discriminator.make_discriminator(args, args.discriminator)
    d_state = official_ssl.random_state(net_d.state_dict(), seed=2)
    torch.save({'params': d_state}, d_file)
    exp = tmp_path / 'exp'
    if args.degradation != 'bicubic':      # its test set is degraded once, seeded
        import shutil
        import subprocess
        import sys
        from cli import REPO
        tiny_data = shutil.copytree(tiny_data, tmp_path / 'data')
        made = subprocess.run([sys.executable, str(REPO / 'src' / 'degrade.py'), '--dir_data',
                               str(tiny_data), '--data_test', 'Tiny', '--scale', '4',
                               '--degradation', args.degradation, '--seed', '0'],
                              capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stderr[-2000:]
    proc = run_main(['--template', recipe, *small, '--pre_train', g_file, '--d_pre_train', d_file,
                     '--vgg_weights', vgg_file, '--batch_size', 2, '--test_every', 1,
                     '--epochs', 1, '--ssl_search', 11, '--ssl_window', 5,
                     '--data_train', 'Sample', '--data_test', 'Tiny', '--dir_data', tiny_data,
                     '--n_threads', 0, '--save', 'run'], exp_root=exp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    term = 'UGAN' if recipe == 'RealESRGAN_SSL' else 'RGAN'
    for name in (term, 'SSL', 'L1'):
        assert f'{name}:' in proc.stdout, proc.stdout[-2000:]
    saved = torch.load(exp / 'run' / 'checkpoint.pt', weights_only=True)['loss']
    prefix = f'terms.{term}.discriminator.'
    moved = max((saved[prefix + k].float() - v.float()).abs().max().item()
                for k, v in d_state.items() if v.is_floating_point() and 'running' not in k
                and not k.endswith(('weight_u', 'weight_v')))
    assert moved < 1e-2          # one Adam step (lr 1e-4) from the file, not a fresh network


def test_a_discriminator_file_of_another_layout_is_refused_by_each_recipe(tmp_path, vgg_file):
    import discriminator
    for recipe in sorted(RECIPES):
        args = make_args('--template', recipe)
        other = 'vgg192' if args.discriminator != 'vgg192' else 'vgg128'
        net = discriminator.make_discriminator(
            make_args('--template', recipe, '--patch_size', 192 if other == 'vgg192' else 128),
            other)
        path = tmp_path / f'{other}.pth'
        torch.save({'params': net.state_dict()}, path)
        with pytest.raises(Exception) as info:
            loss.Loss(make_args('--template', recipe, '--d_pre_train', path,
                                '--vgg_weights', vgg_file))
        message = str(info.value)
        assert type(info.value).__name__ == 'UserError', message
        assert f'not a {args.discriminator} discriminator' in message, message
