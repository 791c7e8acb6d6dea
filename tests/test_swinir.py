"""SwinIR: the released files' state_dict layout, img_size from the file, the official test
padding, and equality with the official network (BasicSR's copy of network_swinir.py)."""
import functools
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import model
import option
import utility
from cli import assert_user_error, run_main
from model import common, swinir
from official_swinir import (load_official_module, official_net, official_padded_forward,
                             random_weights)

KEYS_JSON = Path(__file__).resolve().parent / 'data' / 'swinir_state_dict_keys.json'
RELEASES = {k: v for k, v in json.loads(KEYS_JSON.read_text()).items() if k != '_about'}
# Small enough for a quick forward and backward on the CPU.
TINY = ['--embed_dim', '12', '--depths', '2', '--num_heads', '2', '--window_size', '4',
        '--img_size', '8', '--cpu']


def _release_argv(entry):
    """Our command line for a released file: its template, scale and training patch."""
    spec = RELEASES[entry]
    return ['--template', spec['template'] or 'SwinIR_large', '--scale',
            str(spec['args']['upscale']), '--img_size', str(spec['args']['img_size'])]


@pytest.fixture(scope='module')
def official():
    module = load_official_module()
    if module is None:
        pytest.skip('basicsr is not installed (pip install --no-deps basicsr)')
    return module


@pytest.mark.parametrize('entry', sorted(RELEASES))
def test_release_layout_and_strict_load(entry):
    """Keys in order, shapes, buffers and trainable parameter counts of every released file;
    a state_dict of those shapes under the file's wrapper key loads strictly."""
    spec = RELEASES[entry]
    args = option.parse_args(_release_argv(entry))
    for key, value in spec['args'].items():
        if key not in ('upscale', 'in_chans', 'img_range'):
            ours = getattr(args, key)
            assert (list(ours) if isinstance(ours, tuple) else ours) == value, key
    with torch.device('meta'):
        net = model.make_net(args)
    state = net.state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == list(spec['state_dict'].items())
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == spec['num_parameters']
    buffers = [k for k, _ in net.named_buffers() if k in state]
    assert len(buffers) == spec['num_buffers']
    assert all(state[k].dtype == (torch.int64 if k.endswith('relative_position_index')
                                  else torch.float32) for k in state)

    weights = {spec['wrapper_key']: {k: torch.empty(s, dtype=state[k].dtype, device='meta')
                                     for k, s in spec['state_dict'].items()}}
    model.load_state_dict_explained(net, weights, entry)


def test_release_file_loads_through_pre_train_with_img_size_from_the_file(tmp_path):
    """A real x4 SwinIR-S file, {'params': sd}, loads through --pre_train with another
    --img_size: img_size becomes the file's 64 and every tensor is the file's."""
    entry = '002_lightweightSR_DIV2K_s64w8_SwinIR-S_x4.pth'
    spec = RELEASES[entry]
    weights = random_weights(model.make_net(option.parse_args(_release_argv(entry))).state_dict())
    path = tmp_path / entry
    torch.save({spec['wrapper_key']: weights}, path)
    args = option.parse_args(['--template', 'SwinIR_lightweight', '--scale', '4', '--img_size',
                              '48', '--pre_train', str(path), '--cpu'])
    wrapper = model.Model(args, 'cpu')
    net = wrapper.get_model()
    assert net.img_size == 64
    # The run log says that the file's img_size replaced --img_size 48.
    assert 'img_size 64 taken from' in wrapper.load_note and '(was 48;' in wrapper.load_note
    loaded = net.state_dict()
    assert list(loaded) == list(spec['state_dict'])
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())


def _tiny_state(img_size, seed=0, **changes):
    argv = ['--model', 'SwinIR', '--scale', '2'] + TINY + ['--img_size', str(img_size)]
    net = model.make_net(option.parse_args(argv))
    state = net.state_dict()
    state.update(changes)
    return random_weights(state, seed)


def test_img_size_follows_the_file_for_every_load_path():
    """The shift masks are rebuilt for the file's img_size before any load: the explained
    loader (--pre_train, resume) and a plain load_state_dict (the EMA copy on resume)."""
    weights = _tiny_state(12)
    args = option.parse_args(['--model', 'SwinIR', '--scale', '2'] + TINY)
    for load in (lambda n: model.load_state_dict_explained(n, weights),
                 lambda n: n.load_state_dict(weights)):
        net = model.make_net(args)
        assert net.img_size == 8
        load(net)
        assert net.img_size == 12
        masks = [m for m in net.modules() if isinstance(m, swinir.SwinBlock) and m.shift]
        assert masks and all(m.img_size == 12 for m in masks)
        assert all(torch.equal(m.attn_mask, swinir.shift_mask(12, 12, 4, 2)) for m in masks)
    # The file's mask equals the one computed for its size (the official values).
    assert torch.equal(weights['layers.0.residual_group.blocks.1.attn_mask'],
                       swinir.shift_mask(12, 12, 4, 2))


def test_mask_that_fits_no_img_size_is_one_line(tmp_path):
    key = 'layers.0.residual_group.blocks.1.attn_mask'
    weights = _tiny_state(8, **{key: torch.zeros(5, 16, 16)})
    path = tmp_path / 'bad_mask.pth'
    torch.save({'params': weights}, path)
    proc = run_main(['--model', 'SwinIR', '--scale', '2'] + TINY +
                    ['--pre_train', path, '--test_only', '--save', 'bad'], exp_root=tmp_path)
    assert_user_error(proc, str(path), key, '[5, 16, 16]', '--window_size 4')


@pytest.mark.parametrize('wrapper', ['params', 'params_ema', None])
def test_pre_train_reads_basicsr_wrappers_and_plain_kair_files(tmp_path, wrapper):
    weights = _tiny_state(8, seed=3)
    path = tmp_path / 'w.pth'
    torch.save(weights if wrapper is None else {wrapper: weights}, path)
    args = option.parse_args(['--model', 'SwinIR', '--scale', '2', '--pre_train', str(path)]
                             + TINY)
    loaded = model.Model(args, 'cpu').get_model().state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())


@pytest.mark.parametrize('flags,needle', [
    (['--depths', '2', '2', '--num_heads', '2'], '--num_heads'),
    (['--num_heads', '5'], '--embed_dim 12'),
    (['--img_size', '10'], '--img_size 10'),
    (['--img_size', '4'], '--img_size 4'),
    (['--upsampler', 'nearest+conv'], 'x4'),
])
def test_inconsistent_swinir_flags_are_user_errors(flags, needle):
    args = option.parse_args(['--model', 'SwinIR', '--scale', '2'] + TINY + flags)
    with pytest.raises(utility.UserError, match=needle.replace('+', '.')) as err:
        model.Model(args, 'cpu')
    assert '\n' not in str(err.value)


@pytest.mark.parametrize('bottom,right', [(0, 0), (1, 8), (5, 3), (8, 8), (13, 20)])
def test_mirror_pad_is_the_official_flip_concatenation(bottom, right):
    x = torch.arange(2 * 7 * 6, dtype=torch.float32).view(1, 2, 7, 6)
    ours = common.mirror_pad(x, bottom, right)
    # Beyond one image length the official formula stops; np.pad 'symmetric' continues it.
    expected = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (0, bottom), (0, right)),
                                       mode='symmetric'))
    assert torch.equal(ours, expected)
    if bottom <= 7 and right <= 6:
        flip = torch.cat([x, torch.flip(x, [2])], 2)[:, :, :7 + bottom]
        flip = torch.cat([flip, torch.flip(flip, [3])], 3)[..., :6 + right]
        assert torch.equal(ours, flip)


@pytest.mark.parametrize('h,w', [(16, 13), (9, 8), (3, 5)])
def test_evaluation_pads_as_the_official_script(h, w):
    """In eval mode the network sees the LR image grown by (h // 8 + 1) * 8 - h rows
    (likewise columns) of its mirror image, and the output is cropped to scale * (h, w)."""
    args = option.parse_args(['--template', 'SwinIR_lightweight', '--scale', '3',
                              '--embed_dim', '12', '--depths', '1', '--num_heads', '2',
                              '--cpu'])
    wrapper = model.Model(args, 'cpu').eval()
    seen = []
    wrapper.get_model().register_forward_pre_hook(lambda m, inp: seen.append(inp[0]))
    x = torch.rand(1, 3, h, w) * 255
    with torch.no_grad():
        out = wrapper(x, 0)
    assert out.shape == (1, 3, 3 * h, 3 * w)
    assert torch.equal(seen[0], common.mirror_pad(x, (h // 8 + 1) * 8 - h, (w // 8 + 1) * 8 - w))
    wrapper.train()
    seen.clear()
    wrapper(x, 0)
    assert seen[0].shape == x.shape  # training: no test padding (the net pads to 8 itself)


def _official_and_ours(official, argv, img_size, seed=0, drop_path=0.1):
    args = option.parse_args(argv + ['--img_size', str(img_size), '--drop_path', str(drop_path)])
    ref = official_net(official, args, drop_path_rate=drop_path)
    weights = random_weights(ref.state_dict(), seed)
    ref.load_state_dict(weights, strict=True)
    return args, ref, weights


@pytest.mark.parametrize('scale,upsampler,resi', [(2, 'pixelshuffle', '1conv'),
                                                  (3, 'pixelshuffledirect', '1conv'),
                                                  (4, 'nearest+conv', '3conv')])
def test_training_forward_and_gradients_equal_the_official_network(official, scale, upsampler,
                                                                   resi):
    """Train mode without stochastic depth, every head and residual conv: same output and
    same gradient for every parameter, at the stored mask's size and at another size."""
    argv = ['--model', 'SwinIR', '--scale', str(scale), '--upsampler', upsampler,
            '--resi_connection', resi] + TINY
    args, ref, weights = _official_and_ours(official, argv, img_size=8, drop_path=0.0)
    net = model.make_net(args)
    net.load_state_dict(weights)
    ref.train()
    net.train()
    torch.manual_seed(0)
    for size in ((8, 8), (12, 16)):
        x = torch.rand(2, 3, *size)
        g = torch.randn(2, 3, scale * size[0], scale * size[1])
        ref.zero_grad()
        net.zero_grad()
        y_ref, y = ref(x), net(x * 255) / 255
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
        (y_ref * g).sum().backward()
        (y * g).sum().backward()
        ref_grads = dict(ref.named_parameters())
        for name, p in net.named_parameters():
            expected = ref_grads[name].grad
            torch.testing.assert_close(p.grad, expected, rtol=1e-3,
                                       atol=1e-4 * float(expected.abs().max()),
                                       msg=lambda m, n=name: f'{n}: {m}')


def test_self_ensemble_and_chop_pad_every_view_and_tile(official):
    """--self_ensemble: the mean of the official padded inference over the 8 views;
    --chop: each tile goes through the official padded inference."""
    argv = ['--template', 'SwinIR_lightweight', '--scale', '2', '--embed_dim', '12',
            '--depths', '2', '--num_heads', '2', '--cpu']
    args, ref, weights = _official_and_ours(official, argv, img_size=64)
    ref.eval()
    official_run = functools.partial(official_padded_forward, ref, scale=2)
    with torch.no_grad():
        x = torch.rand(1, 3, 13, 10)
        wrapper = model.Model(args.replace(self_ensemble=True), 'cpu').eval()
        wrapper.load(weights)
        torch.testing.assert_close(wrapper(x * 255, 0) / 255, model.forward_x8(official_run, x),
                                   rtol=0, atol=2e-5)
        x = torch.rand(1, 3, 44, 41)  # cut once into 2 x 2 tiles of 32 x 30 or 31
        wrapper = model.Model(args.replace(chop=True, chop_size=1000), 'cpu').eval()
        wrapper.load(weights)
        tiled = model.forward_tiled(official_run, x, 2, max_area=1000)
        torch.testing.assert_close(wrapper(x * 255, 0) / 255, tiled, rtol=0, atol=2e-5)
        assert (tiled - official_run(x)).abs().max() > 1e-3  # the tiles did change something


def _write_png(path, img):
    iio.imwrite(path, img, extension='.png')


@pytest.mark.parametrize('template,scale,flags,img_size', [
    ('SwinIR_classical', 2, ['--depths', '2', '2', '--num_heads', '6', '6'], 48),
    ('SwinIR_lightweight', 4, ['--depths', '2', '2', '--num_heads', '6', '6'], 64),
])
def test_cli_sr_images_equal_the_official_network(official, tmp_path, template, scale, flags,
                                                  img_size):
    """The test-only CLI's saved SR images vs the official network with the official padding
    and 8-bit rounding, same random weights (a {'params': ...} file trained at img_size):
    at most one level off, >= 99.9% equal.  LR sizes: odd and even sides, a multiple of 8
    (padded by a full window) and one padded to img_size (the stored mask is used)."""
    argv = ['--template', template, '--scale', str(scale)] + flags + ['--cpu']
    args, ref, weights = _official_and_ours(official, argv, img_size)
    ref.eval()
    path = tmp_path / 'swinir_random.pth'
    torch.save({'params': weights}, path)
    demo = tmp_path / 'lr'
    demo.mkdir()
    rng = np.random.default_rng(0)
    sizes = [(16, 13), (9, 10), (img_size - 8, img_size - 1)]
    for i, (h, w) in enumerate(sizes):
        # Smooth random images with texture: a blurred noise field plus noise.
        base = rng.random((h // 3 + 2, w // 3 + 2, 3))
        img = np.kron(base, np.ones((3, 3, 1)))[:h, :w] * 200 + rng.random((h, w, 3)) * 55
        _write_png(demo / f'img{i}.png', img.astype(np.uint8))

    proc = run_main(argv + ['--img_size', '64', '--pre_train', path, '--data_test', 'Demo',
                            '--dir_demo', demo, '--test_only', '--save_results',
                            '--save', 'eq', '--n_threads', '0'], exp_root=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    total = equal = 0
    for i, (h, w) in enumerate(sizes):
        lq = torch.from_numpy(iio.imread(demo / f'img{i}.png')).permute(2, 0, 1)[None].float()
        with torch.no_grad():
            out = official_padded_forward(ref, lq / 255.0, scale)
        expected = (out.clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
        saved = iio.imread(tmp_path / 'eq' / 'results-Demo' / f'img{i}_x{scale}_SR.png')
        assert saved.shape == (scale * h, scale * w, 3)
        diff = np.abs(saved.astype(int) - expected.astype(int))
        assert diff.max() <= 1, (i, diff.max())
        total += diff.size
        equal += int((diff == 0).sum())
        # The weights give a varied image, not a saturated one.
        assert ((expected > 0) & (expected < 255)).mean() > 0.5
    # `pytest -s` shows the figure that README quotes.
    print(f'{template} x{scale}: {equal} of {total} values equal ({equal / total:.4%}), '
          f'the rest one level off')
    assert equal / total >= 0.999, equal / total


def test_stochastic_depth_acts_in_training_only():
    """--drop_path: residual branches are dropped at random in training; eval is fixed."""
    # 8 blocks at rates 0 to 0.5: the chance of two equal draws for 2 samples is < 1e-5.
    args = option.parse_args(['--model', 'SwinIR', '--scale', '2'] + TINY
                             + ['--depths', '8', '--drop_path', '0.5'])
    net = model.make_net(args)
    x = torch.rand(2, 3, 8, 8) * 255
    torch.manual_seed(0)
    first, second = net(x), net(x)
    assert not torch.equal(first, second)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
