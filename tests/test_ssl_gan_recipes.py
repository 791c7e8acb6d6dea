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


@pytest.mark.parametrize('name', sorted(GENERATORS))
def test_generator_keys_and_shapes_are_the_released_layout(name):
    """Quick (meta device, no values): our network's state_dict after renaming the file's keys
    (RRDBNet reads the old ESRGAN names) has the released file's keys and shapes."""
    import model
    flags, _ = GENERATORS[name]
    with torch.device('meta'):
        net = model.make_net(make_args(*flags, '--scale', '4'))
    layout = FIX[name]['layout']['shapes']
    fake_file = {k: torch.empty(shape, device='meta') for k, shape in layout.items()}
    convert = getattr(net, 'from_other_layout', lambda sd: sd)
    renamed = {k: tuple(v.shape) for k, v in convert(fake_file).items()}
    assert renamed == {k: tuple(v.shape) for k, v in net.state_dict().items()}


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


# Full-size SPSR and BebyGAN networks (16-25M parameters) take tens of seconds here.
FULL_SIZE = [pytest.param('spsr', marks=pytest.mark.slow),
             pytest.param('bebygan', marks=pytest.mark.slow), 'ranksrgan']


@pytest.mark.parametrize('name', FULL_SIZE)
def test_generator_from_released_layout_equals_official_within_one_level(tmp_path, name):
    sr = _eval_sr(tmp_path, name) / 255
    ref = FIX[name]['sr']
    assert sr.shape == ref.shape
    assert (_levels(sr) - _levels(ref)).abs().max() <= 1
    assert (sr - ref).abs().max() < 1e-4


@pytest.mark.slow
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
@pytest.mark.parametrize('name', FULL_SIZE)
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


# ----------------------------------------------------------------------------- loss parts

@pytest.mark.skipif(official.official_root() is None, reason='SSL_OFFICIAL is not set')
def test_stored_loss_references_equal_the_live_official_code():
    from reference.make_ssl_gan_fixtures import losses
    live = {}
    losses(official.official_root(), live)
    for key in ('hr', 'sr', 'lr_small', 'flat_mask', 'grad'):
        assert torch.equal(live[key], FIX[key]), key
    for key, sub in (('bbl', 'buddies'), ('bbl', 'loss'), ('bp', 'down'), ('bp', 'loss'),
                     ('ranker', 'eval_value'), ('ranker', 'eval_grad'),
                     ('ranker', 'train_value'), ('d296', 'logits')):
        assert torch.allclose(live[key][sub], FIX[key][sub], atol=1e-6), (key, sub)


def test_gradient_map_equals_the_official_operator_at_any_range():
    from gradient import GradientMap
    assert torch.allclose(GradientMap(1.0)(FIX['sr']), FIX['grad'], atol=1e-6)
    assert torch.allclose(GradientMap(255.0)(FIX['sr'] * 255) / 255, FIX['grad'], atol=1e-5)


@pytest.mark.parametrize('chunk', [1024, 7])
def test_best_buddy_loss_equals_the_official_bbl(chunk):
    from loss.bbl import BestBuddyLoss
    from loss.bbl import patches
    term = BestBuddyLoss(chunk=chunk)
    ours, theirs = term.buddies(FIX['sr'], FIX['hr']), FIX['bbl']['buddies']
    # The same buddies, except where two candidates score the same up to float32 rounding
    # (flat regions hold near-identical patches): there both are minimisers in float64.
    differ = (ours != theirs).any(-1)
    assert differ.float().mean() < 0.02

    def score(buddy):
        p_sr, p_hr = patches(FIX['sr']).double(), patches(FIX['hr']).double()
        return ((p_sr - buddy.double()) ** 2).sum(-1) + ((p_hr - buddy.double()) ** 2).sum(-1)
    assert torch.allclose(score(ours), score(theirs), rtol=0, atol=1e-5)
    assert torch.allclose(term(FIX['sr'], FIX['hr']), FIX['bbl']['loss'], atol=1e-6)
    # the buddies do not depend on the range; the loss is in the images' units
    assert torch.allclose(term(FIX['sr'] * 255, FIX['hr'] * 255) / 255, FIX['bbl']['loss'],
                          atol=1e-6)


def test_bbl_gradient_reaches_sr_only_through_its_patches():
    from loss.bbl import BestBuddyLoss
    sr = FIX['sr'].clone().requires_grad_(True)
    BestBuddyLoss()(sr, FIX['hr']).backward()
    covered = torch.zeros_like(sr)
    covered[..., :48 // 3 * 3, :48 // 3 * 3] = 1
    assert (sr.grad.abs() > 0).float().mean() > 0.9 * covered.mean()


def test_back_projection_equals_the_official_imresize_and_l1():
    from imresize import imresize
    from loss.bp import BackProjectionL1
    assert torch.allclose(imresize(FIX['sr'], scale=0.25), FIX['bp']['down'], atol=1e-6)
    value = BackProjectionL1()(FIX['sr'], FIX['hr'], lr=FIX['lr_small'])
    assert torch.allclose(value, FIX['bp']['loss'], atol=1e-7)


def test_flat_mask_equals_the_official_one_at_any_range():
    from loss._flat_mask import flat_mask
    mask = flat_mask(FIX['hr'])
    assert 0.1 < float(mask.mean()) < 0.9
    assert torch.equal(mask, FIX['flat_mask'])
    assert (flat_mask(FIX['hr'] * 255, 255.0) != FIX['flat_mask']).float().mean() < 0.01


def _rank_term(tmp_path, released):
    from loss.rank import make_loss
    entry = FIX['ranker']
    path = tmp_path / 'ranker.pth'
    torch.save(official.seeded_weights(entry['layout'], entry['seed']), path)
    args = make_args('--loss', '1*RANK', '--ranker_pre_train', path, '--patch_size', '32',
                     *(['--rank_released'] if released else []))
    return make_loss(args)


def _ranker_input():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(
        FIX['ranker']['x_seed']))


def test_rank_term_is_the_paper_term_through_the_frozen_ranker(tmp_path):
    term = _rank_term(tmp_path, released=False)
    x = (_ranker_input() * 255).requires_grad_(True)
    value = term(x, x.detach())
    assert torch.allclose(value, FIX['ranker']['eval_value'], atol=1e-5)
    value.backward()
    assert torch.allclose(x.grad * 255, FIX['ranker']['eval_grad'], atol=1e-6)
    assert all(p.grad is None for p in term.parameters())
    assert not term.ranker.training


def test_rank_term_released_option_has_no_gradient_as_the_released_code(tmp_path):
    term = _rank_term(tmp_path, released=True)
    x = (_ranker_input() * 255).requires_grad_(True)
    value = term(x, x.detach())
    assert torch.allclose(value, FIX['ranker']['train_value'], atol=1e-5)
    assert not value.requires_grad


# ----------------------------------------------------------------------------- recipes

def test_discriminator_296_equals_the_official_network():
    import discriminator
    entry = FIX['d296']
    args = make_args('--template', 'RankSRGANPI_SSL', '--ranker_pre_train', 'unused')
    net = discriminator.make_discriminator(args, 'vgg296')
    net.load_state_dict(official.seeded_weights(entry['layout'], entry['seed']), strict=True)
    x = torch.rand(2, 3, 296, 296, generator=torch.Generator().manual_seed(entry['input_seed']))
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), entry['logits'], atol=1e-5)


def _vgg_style_file(path, input_size, n_stages, wrap=None):
    """A VGG-style discriminator file (BasicSR VGG-128 / the SSL repository's VGG-192 layout,
    as src/discriminator/ builds them: tests/test_discriminator.py checks those layouts)."""
    from discriminator._vgg_style import VGGStyleDiscriminator
    state = VGGStyleDiscriminator(3, 64, n_stages=n_stages, input_size=input_size).state_dict()
    torch.save({wrap: state} if wrap else state, path)
    return path


def _official_layout_file(path, name, wrap=None):
    entry = FIX[name]
    state = official.seeded_weights(entry['layout'], entry['seed'], entry.get('gain', 1.0),
                                    entry.get('shift'))
    torch.save({wrap: state} if wrap else state, path)
    return path


def _recipe_args(template, data_dir, vgg, save, *extra):
    # One iteration at the official patch size, batch 1, a small SSL window.
    return ['--template', template, '--data_train', 'Sample', '--data_test', 'Tiny',
            '--dir_data', data_dir, '--batch_size', '1', '--test_every', '1', '--epochs', '1',
            '--ssl_search', '11', '--ssl_window', '5', '--vgg_weights', vgg,
            '--n_threads', '0', '--save', save, *extra]


def _recipe_files(tmp_path, template):
    """The official-layout files a recipe starts from: {flag: path}."""
    if template == 'SPSR_SSL':
        return {'--pre_train': _official_layout_file(tmp_path / 'spsr.pth', 'spsr', 'params'),
                '--d_pre_train': _vgg_style_file(tmp_path / 'net_d.pth', 128, 5, 'params'),
                '--d_grad_pre_train': _vgg_style_file(tmp_path / 'net_d_grad.pth', 128, 5,
                                                      'params')}
    if template == 'BebyGAN_SSL':
        return {'--pre_train': _official_layout_file(tmp_path / 'RRDB_warmup.pth', 'bebygan'),
                '--d_pre_train': _vgg_style_file(tmp_path / 'net_d.pth', 192, 6)}
    return {'--pre_train': _official_layout_file(tmp_path / 'mmsr_SRResNet_pretrain.pth',
                                                 'ranksrgan'),
            '--ranker_pre_train': _official_layout_file(tmp_path / 'mmsr_Ranker_PI.pth',
                                                        'ranker'),
            '--d_pre_train': _official_layout_file(tmp_path / 'net_d.pth', 'd296')}


RECIPE_TERMS = {
    'SPSR_SSL': ('L1', 'GRAD_MSE', 'BRANCH_L1', 'VGG54', 'RGAN', 'GRAD_RGAN', 'SSL'),
    'BebyGAN_SSL': ('BBL', 'BP', 'PERCEPTUAL', 'REGION_RGAN', 'SSL'),
    'RankSRGANPI_SSL': ('L1', 'RANK', 'VGG54', 'GAN', 'SSL'),
}


@pytest.mark.slow
@pytest.mark.parametrize('template', sorted(RECIPE_TERMS))
def test_recipe_trains_an_iteration_from_official_layout_files(tmp_path, tiny_data, vgg_file,
                                                                template):
    from cli import run_main
    files = _recipe_files(tmp_path, template)
    flags = [str(x) for kv in files.items() for x in kv]
    proc = run_main(_recipe_args(template, tiny_data, vgg_file, 'run', *flags),
                    exp_root=tmp_path / 'exp')
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / 'exp' / 'run' / 'log.txt').read_text()
    for term in RECIPE_TERMS[template]:
        assert f'{term}:' in proc.stdout + log, term
    assert (tmp_path / 'exp' / 'run' / 'model' / 'model_latest.pt').is_file()


@pytest.mark.slow
@pytest.mark.parametrize('template, flag, wrong', [
    ('SPSR_SSL', '--d_grad_pre_train', (192, 6)),
    ('RankSRGANPI_SSL', '--d_pre_train', (128, 5)),
])
def test_recipe_refuses_a_discriminator_file_of_another_layout(tmp_path, tiny_data, vgg_file,
                                                               template, flag, wrong):
    from cli import assert_user_error, run_main
    files = _recipe_files(tmp_path, template)
    files[flag] = _vgg_style_file(tmp_path / 'other.pth', *wrong)
    flags = [str(x) for kv in files.items() for x in kv]
    proc = run_main(_recipe_args(template, tiny_data, vgg_file, 'bad', *flags),
                    exp_root=tmp_path / 'exp')
    assert_user_error(proc, flag, 'does not fit')


def test_branch_term_without_a_model_that_returns_the_branch_is_refused(tmp_path, tiny_data):
    from cli import assert_user_error, run_main
    from conftest import TINY
    proc = run_main([*TINY, '--scale', '2', '--loss', '1*L1+0.5*BRANCH_L1', '--data_train',
                     'Sample', '--data_test', 'Tiny', '--dir_data', tiny_data, '--epochs', '1',
                     '--test_every', '1', '--save', 'x'], exp_root=tmp_path)
    assert_user_error(proc, 'BRANCH_L1', 'grad_branch')


@pytest.mark.parametrize('flag', [['--rank_released'], ['--ranker_pre_train', 'r.pth'],
                                  ['--d_grad_pre_train', 'd.pth'],
                                  ['--perceptual_layers', 'conv5_4:1']])
def test_recipe_flags_are_refused_without_their_term(flag, capsys):
    with pytest.raises(SystemExit) as info:
        make_args('--loss', '1*L1', *flag)
    assert info.value.code == 2
    assert flag[0] in capsys.readouterr().err


def test_perceptual_layers_are_parsed_and_bad_ones_refused():
    from loss.perceptual import parse_layers
    assert parse_layers('conv3_4:0.125+conv4_4:0.25+conv5_4:0.5') == {
        'conv3_4': 0.125, 'conv4_4': 0.25, 'conv5_4': 0.5}
    assert parse_layers('') is None
    import utility
    for bad in ('conv9_9:1', 'conv5_4', 'conv5_4:-1', 'conv5_4:1+conv5_4:2'):
        with pytest.raises(utility.UserError, match='--perceptual_layers'):
            parse_layers(bad)
