"""RRDBNet, the VGG perceptual losses and the GAN / RGAN terms (CPU, tiny configurations).

VGG weights are random tensors in torchvision's vgg19 state_dict layout (``vgg_file``
fixture, tests/vgg_weights.py).
"""
import datetime
import os

import pytest
import torch
import torch.nn.functional as F

import model
import option
import utility
from loss import _adversarial, _vgg, gan, rgan, vgg22, vgg54
from model import rrdbnet
from vgg_weights import random_vgg19_state

TINY_RRDB = ['--model', 'RRDBNet', '--n_rrdb', '1', '--n_feats', '8', '--rrdb_growth', '4']


# Terms that read --vgg_weights / --gan_k: the flags are refused when --loss has none of them.
_READERS = '1*VGG22+1*VGG54+1*PERCEPTUAL+1*GAN+1*RGAN'


def _args(*flags):
    flags = list(flags)
    return option.parse_args(flags if '--loss' in flags else ['--loss', _READERS] + flags)


def _images(b=2, c=3, size=32, seed=0):
    """A smooth hr batch and a noisy sr batch in [0, 255]."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing='ij')
    hr = torch.stack([(torch.sin(6 * x + k) * torch.cos(4 * y - k) + 1) * 127.5
                      for k in range(b * c)]).view(b, c, size, size)
    sr = (hr + 20 * torch.randn(hr.shape, generator=g)).clamp(0, 255)
    return sr, hr


# -- RRDBNet -------------------------------------------------------------------------------

@pytest.mark.parametrize('scale', rrdbnet.SCALES)
@pytest.mark.parametrize('lr_size', [(8, 10), (7, 9)])
def test_rrdbnet_shape_and_gradients(scale, lr_size):
    torch.manual_seed(0)
    net = rrdbnet.make_model(_args(*TINY_RRDB, '--scale', str(scale)))
    lr = torch.rand(2, 3, *lr_size) * 255
    sr = net(lr)
    assert sr.shape == (2, 3, scale * lr_size[0], scale * lr_size[1])
    assert torch.isfinite(sr).all()
    sr.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_rrdbnet_traits():
    assert rrdbnet.SCALES == (2, 4)
    assert rrdbnet.MULTI_SCALE is False and rrdbnet.INPUT_LARGE is False


def _basicsr_shapes(n_in, n_feats=64, n_rrdb=23, growth=32, n_out=3):
    """BasicSR RRDBNet's state_dict layout, written out from its architecture."""
    shapes = {'conv_first.weight': (n_feats, n_in, 3, 3), 'conv_first.bias': (n_feats,)}
    for b in range(n_rrdb):
        for r in (1, 2, 3):
            for c in range(1, 6):
                out = n_feats if c == 5 else growth
                key = f'body.{b}.rdb{r}.conv{c}'
                shapes[key + '.weight'] = (out, n_feats + (c - 1) * growth, 3, 3)
                shapes[key + '.bias'] = (out,)
    for name in ('conv_body', 'conv_up1', 'conv_up2', 'conv_hr'):
        shapes[name + '.weight'] = (n_feats, n_feats, 3, 3)
        shapes[name + '.bias'] = (n_feats,)
    shapes['conv_last.weight'] = (n_out, n_feats, 3, 3)
    shapes['conv_last.bias'] = (n_out,)
    return shapes


@pytest.mark.parametrize('scale,n_in', [(4, 3), (2, 12)])
def test_rrdbnet_default_has_basicsr_layout(scale, n_in):
    """Defaults (23 blocks, 64 features, growth 32); x2 takes the pixel-unshuffled input."""
    net = rrdbnet.make_model(_args('--model', 'RRDBNet', '--scale', str(scale)))
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert got == _basicsr_shapes(n_in)
    # A state_dict in that layout loads strictly.
    net.load_state_dict({k: torch.zeros(s) for k, s in _basicsr_shapes(n_in).items()})


def test_rrdbnet_works_on_unit_range():
    """[0, rgb_range] in and out, [0, 1] inside: rgb_range only rescales."""
    torch.manual_seed(0)
    net255 = rrdbnet.make_model(_args(*TINY_RRDB, '--scale', '4'))
    net1 = rrdbnet.make_model(_args(*TINY_RRDB, '--scale', '4', '--rgb_range', '1'))
    net1.load_state_dict(net255.state_dict())
    lr = torch.rand(1, 3, 6, 6)
    torch.testing.assert_close(net255(lr * 255), net1(lr) * 255, rtol=1e-4, atol=1e-3)


# -- VGG -----------------------------------------------------------------------------------

def _reference_features(state, x, last_conv):
    """VGG19 features up to ``last_conv`` (pre-ReLU), written out with functional ops."""
    mean = torch.tensor(_vgg.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_vgg.IMAGENET_STD).view(1, 3, 1, 1)
    x = (x / 255 - mean) / std
    blocks = [[0, 2], [5, 7], [10, 12, 14, 16], [19, 21, 23, 25], [28, 30, 32, 34]]
    for block in blocks:
        for index in block:
            x = F.conv2d(x, state[f'features.{index}.weight'], state[f'features.{index}.bias'],
                         padding=1)
            if index == last_conv:
                return x
            x = F.relu(x)
        x = F.max_pool2d(x, 2)
    raise AssertionError(last_conv)


@pytest.mark.parametrize('conv,last,shape', [('22', 7, (128, 16, 16)), ('54', 34, (512, 2, 2))])
def test_vgg_features_match_torchvision_indices(vgg_file, conv, last, shape):
    state = _vgg.load_vgg19_state(str(vgg_file))
    assert len(state) == 32 and not any(k.startswith('classifier') for k in state)
    net = _vgg.VGG19Features(conv, state, rgb_range=255)
    _, hr = _images(b=1, size=32)
    feats = net(hr)
    assert feats.shape == (1, *shape)
    torch.testing.assert_close(feats, _reference_features(random_vgg19_state(), hr, last))
    assert (feats < 0).any()  # pre-activation: the ReLU is not applied


@pytest.mark.parametrize('module', [vgg22, vgg54])
def test_vgg_loss_backpropagates_to_sr(vgg_file, module):
    term = module.make_loss(_args('--vgg_weights', str(vgg_file)))
    sr, hr = _images()
    sr.requires_grad_(True)
    loss = term(sr, hr)
    assert loss.ndim == 0 and loss > 0
    loss.backward()
    assert torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    assert term(hr, hr) == 0


def test_vgg_is_frozen_and_not_checkpointed(vgg_file):
    term = vgg54.make_loss(_args('--vgg_weights', str(vgg_file)))
    term.train()
    assert not term.vgg.training
    assert list(term.parameters()) == []
    assert all(not b.requires_grad for b in term.buffers())
    assert term.state_dict() == {}  # weights come from --vgg_weights, not from checkpoints


def _save(path, obj):
    torch.save(obj, path)
    return str(path)


def _mismatched_files(tmp_path):
    state = random_vgg19_state()
    vgg16_like = {k: v for k, v in state.items() if k not in ('features.34.weight',
                                                                'features.34.bias')}
    wrong_shape = dict(state, **{'features.0.weight': torch.zeros(64, 1, 3, 3)})
    bn_like = dict(state, **{'features.1.running_mean': torch.zeros(64)})
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a torch file')
    return {
        'empty flag': '',
        'missing file': str(tmp_path / 'nowhere.pth'),
        'directory': str(tmp_path),
        'garbage': str(garbage),
        'not a dict': _save(tmp_path / 'tensor.pth', torch.zeros(3)),
        'vgg16-like': _save(tmp_path / 'vgg16.pth', vgg16_like),
        'wrong shape': _save(tmp_path / 'shape.pth', wrong_shape),
        'unexpected key': _save(tmp_path / 'bn.pth', bn_like),
    }


def test_vgg_bad_weights_are_user_errors(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'no_torch_home'))    # no vgg19 file there
    for case, path in _mismatched_files(tmp_path).items():
        for module in (vgg22, vgg54):
            with pytest.raises(utility.UserError) as info:
                module.make_loss(_args('--vgg_weights', path))
            message = str(info.value)
            assert '\n' not in message, case
            assert 'vgg19' in message and '--vgg_weights' in message, case


def test_vgg_needs_rgb(vgg_file):
    with pytest.raises(utility.UserError, match='n_colors'):
        vgg54.make_loss(_args('--vgg_weights', str(vgg_file), '--n_colors', '1'))


# -- GAN / RGAN ----------------------------------------------------------------------------

def _tiny_term(relativistic, seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault('discriminator', _adversarial.VGGStyleDiscriminator(3, 4))
    return _adversarial.Adversarial(relativistic=relativistic, lr=1e-3, **kw)


def _d_state(term):
    return {k: v.clone() for k, v in term.discriminator.state_dict().items()}


@pytest.mark.parametrize('module', [gan, rgan])
def test_gan_from_args_backpropagates_to_sr_only(module):
    args = _args('--patch_size', '32', '--gan_k', '2', '--lr', '2e-4', '--betas', '0.9', '0.99',
                 '--epsilon', '1e-7')
    term = module.make_loss(args)
    group = term.optimizer.param_groups[0]
    assert (group['lr'], group['betas'], group['eps'], term.gan_k) == (2e-4, (0.9, 0.99), 1e-7, 2)
    term.train()
    sr, hr = _images()
    sr.requires_grad_(True)
    loss = term(sr, hr)
    d_grads = [p.grad.clone() for p in term.discriminator.parameters()]
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    # The generator's backward leaves the discriminator's gradients alone.
    for g, p in zip(d_grads, term.discriminator.parameters()):
        assert torch.equal(g, p.grad)
    assert all(s['step'] == 2 for s in term.optimizer.state.values())


@pytest.mark.parametrize('relativistic', [False, True])
def test_discriminator_updates_in_training_mode_only(relativistic):
    term = _tiny_term(relativistic)
    sr, hr = _images()
    term.eval()
    before = _d_state(term)
    term(sr, hr)
    after = _d_state(term)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert term.optimizer.state == {} and term.last_d_loss is None
    term.train()
    term(sr, hr)
    changed = _d_state(term)
    assert not torch.equal(before['conv0_0.weight'], changed['conv0_0.weight'])
    assert not torch.equal(before['linear2.weight'], changed['linear2.weight'])
    assert torch.isfinite(term.last_d_loss)


@pytest.mark.parametrize('relativistic', [False, True])
def test_generator_loss_formula(relativistic):
    """Eval mode: the returned loss against BCE written out with softplus."""
    term = _tiny_term(relativistic).eval()
    sr, hr = _images()
    with torch.no_grad():
        c_fake = term.discriminator(sr / 255)
        c_real = term.discriminator(hr / 255)
        got = term(sr, hr)
    if relativistic:
        # -log(1 - sigmoid(a)) = softplus(a); -log(sigmoid(a)) = softplus(-a)
        want = (F.softplus(c_real - c_fake.mean()).mean()
                + F.softplus(-(c_fake - c_real.mean())).mean()) / 2
    else:
        want = F.softplus(-c_fake).mean()
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize('relativistic', [False, True])
def test_discriminator_learns(relativistic):
    term = _tiny_term(relativistic).train()
    sr, hr = _images(size=32)
    losses = []
    for _ in range(12):
        term(sr, hr)
        losses.append(float(term.last_d_loss))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize('relativistic', [False, True])
def test_state_dict_round_trip_resumes_exactly(tmp_path, relativistic):
    sr, hr = _images(seed=1)
    first = _tiny_term(relativistic, seed=0, gan_k=2).train()
    for _ in range(2):
        first(sr, hr)
    path = tmp_path / 'loss.pt'
    torch.save(first.state_dict(), path)
    assert any(k.endswith('_extra_state') for k in first.state_dict())

    second = _tiny_term(relativistic, seed=123, gan_k=2).train()
    second.load_state_dict(torch.load(path, weights_only=True))
    second.to('cpu')  # the trainer may move the loss after loading; Adam state follows
    s1, s2 = first.optimizer.state_dict(), second.optimizer.state_dict()
    assert s1['param_groups'] == s2['param_groups']
    for i in s1['state']:
        for k in s1['state'][i]:
            assert torch.equal(s1['state'][i][k], s2['state'][i][k])

    sr2, hr2 = _images(seed=2)
    sr_a = sr2.clone().requires_grad_(True)
    sr_b = sr2.clone().requires_grad_(True)
    loss_a, loss_b = first(sr_a, hr2), second(sr_b, hr2)
    assert torch.equal(loss_a, loss_b)
    loss_a.backward()
    loss_b.backward()
    assert torch.equal(sr_a.grad, sr_b.grad)
    a, b = _d_state(first), _d_state(second)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize('relativistic', [False, True])
def test_adversarial_under_autocast(relativistic):
    term = _tiny_term(relativistic).train()
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    sr, hr = _images()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = conv(sr)
        assert out.dtype == torch.bfloat16
        loss = term(out, hr)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    assert all(p.dtype == torch.float32 for p in term.discriminator.parameters())


def test_gan_refuses_tiny_patches():
    with pytest.raises(utility.UserError, match='patch_size'):
        rgan.make_loss(_args('--patch_size', '16'))


def test_discriminator_is_vgg128_at_128():
    """At 128x128 the adaptive pool sees 4x4 already: ESRGAN's VGG128 unchanged."""
    d = _adversarial.VGGStyleDiscriminator(3, 64)
    assert d.linear1.in_features == 512 * 16 and d.linear2.out_features == 1
    seen = []
    d.pool.register_forward_hook(lambda m, i, o: seen.append((i[0].shape, o.shape)))
    d(torch.rand(2, 3, 128, 128))
    assert seen[0][0] == seen[0][1] == (2, 512, 4, 4)


def _ddp_worker(rank, world, init_file, out_dir, relativistic):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=60))
    try:
        term = _tiny_term(relativistic, seed=rank).train()  # different init on each rank
        sr, hr = _images(seed=rank)  # and different data
        term(sr, hr)
        term(sr, hr)
        torch.save(_d_state(term), os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason='no torch.distributed')
def test_discriminator_stays_identical_across_ranks(tmp_path):
    import torch.multiprocessing as mp
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / 'init'), str(tmp_path), True), nprocs=2)
    a = torch.load(tmp_path / 'rank0.pt', weights_only=True)
    b = torch.load(tmp_path / 'rank1.pt', weights_only=True)
    for k in a:
        if 'running' in k:
            continue  # BatchNorm statistics are per rank by design
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize('text', ['5*VGG54+0.15*GAN', '0.01*L1+1*VGG54+0.005*RGAN'])
def test_composite_loss_trains_and_checkpoints(tmp_path, vgg_file, text):
    """Through loss.Loss: the strings parse, back-propagate, and the checkpoint (weights-only
    loadable) restores the discriminator and its optimizer."""
    import loss as loss_pkg
    args = _args('--loss', text, '--vgg_weights', str(vgg_file), '--patch_size', '32')
    torch.manual_seed(0)
    first = loss_pkg.Loss(args).train()
    sr, hr = _images()
    sr.requires_grad_(True)
    first(sr, hr).backward()
    assert torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    torch.save(first.state_dict(), tmp_path / 'loss.pt')

    torch.manual_seed(1)
    second = loss_pkg.Loss(args).train()
    second.load_state_dict(torch.load(tmp_path / 'loss.pt', weights_only=True))
    sr2, hr2 = _images(seed=3)
    assert torch.equal(first(sr2, hr2), second(sr2, hr2))


def test_rrdbnet_refuses_other_scales():
    with pytest.raises(utility.UserError, match='--scale 2/4, not 3'):
        model.make_net(_args(*TINY_RRDB, '--scale', '3'))


@pytest.mark.parametrize('module, smallest', [(vgg22, 2), (vgg54, 16)])
def test_vgg_refuses_patches_its_pools_cannot_halve(module, smallest, vgg_file):
    with pytest.raises(utility.UserError, match=f'--patch_size >= {smallest}'):
        module.make_loss(_args('--vgg_weights', str(vgg_file), '--patch_size', str(smallest - 1)))
    term = module.make_loss(_args('--vgg_weights', str(vgg_file), '--patch_size', str(smallest)))
    sr, hr = _images(size=smallest)
    assert torch.isfinite(term(sr, hr))
