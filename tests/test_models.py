"""Every registered model at every scale it supports, and EDSR-PyTorch's state_dict layout."""
import importlib
import json
from pathlib import Path

import pytest
import torch

import model
import option
import utility

KEYS_JSON = Path(__file__).resolve().parent / 'data' / 'edsr_pytorch_state_dict_keys.json'

# Small enough to run every model forward and backward in well under a second on a CPU.
TINY = ['--n_resblocks', '2', '--n_feats', '16', '--n_resgroups', '2', '--reduction', '4',
        '--G0', '16', '--RDNconfig', 'A', '--n_rrdb', '1', '--rrdb_growth', '8',
        '--embed_dim', '12', '--depths', '2', '--num_heads', '2', '--window_size', '4',
        '--img_size', '8', '--cpu']

# The EDSR-PyTorch configuration behind every entry of the reference json.
LAYOUTS = {
    'edsr_r16f64x2': ['--model', 'EDSR', '--scale', '2'],
    'edsr_r16f64x4': ['--model', 'EDSR', '--scale', '4'],
    'edsr_r32f256x2': ['--template', 'EDSR_paper', '--scale', '2'],
    'rcan_x2': ['--template', 'RCAN', '--scale', '2'],
    'mdsr_x234': ['--model', 'MDSR', '--scale', '2+3+4'],
}
# Too big to allocate in a quick test: checked on the 'meta' device (shapes, no data).
BIG = {'edsr_r32f256x2', 'rcan_x2'}


def _supported_scales(name):
    scales = model.model_traits(importlib.import_module('model.' + name))[0]
    return tuple(scales) if scales is not None else model.DEFAULT_SCALES


CASES = [pytest.param(name, s, id=f'{name}-x{s}')
         for name in model.available_models() for s in _supported_scales(name)]


# Size flags that only one model reads (refused for the others).
OWN_TINY = {'diffsr': ['--unet_channels', '8', '16', '--unet_layers', '1',
                       '--diffusion_steps', '2']}


@pytest.mark.parametrize('name,scale', CASES)
def test_every_model_at_every_scale(name, scale):
    """Output shape, finite output, and a finite gradient for every trainable parameter."""
    torch.manual_seed(0)
    args = option.parse_args(['--model', name, '--scale', str(scale)] + TINY
                             + OWN_TINY.get(name, []))
    net = model.Model(args, 'cpu').train()
    lr = torch.rand(2, 3, 6, 7) * 255
    # The step protocol: a model may take the HR batch in training and return its
    # auxiliary outputs by name beside 'sr' (AUX_OUTPUTS).
    given = {'hr': torch.rand(2, 3, 6 * scale, 7 * scale) * 255}
    out = net(lr, 0, **{k: given[k] for k in net.train_inputs})
    outputs = out if isinstance(out, dict) else {'sr': out}
    assert set(outputs) == {'sr', *net.aux_outputs}
    sr = outputs['sr']
    assert sr.shape == (2, 3, 6 * scale, 7 * scale)
    assert all(torch.isfinite(v).all() for v in outputs.values())

    trainable = [(n, p) for n, p in net.get_model().named_parameters() if p.requires_grad]
    if trainable:  # Bicubic has nothing to train
        sum((v * torch.randn_like(v)).mean() for v in outputs.values()).backward()
    bad = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not bad, f'{name} x{scale}: no or non-finite gradient for {bad}'

    _, multi_scale, _ = model.model_traits(importlib.import_module('model.' + name))
    if multi_scale:
        # One network for all its scales: each index gives its own output size.
        scales = _supported_scales(name)
        args = option.parse_args(['--model', name, '--scale', '+'.join(map(str, scales))]
                                 + TINY + OWN_TINY.get(name, []))
        net = model.Model(args, 'cpu').eval()
        with torch.no_grad():
            for idx, s in enumerate(scales):
                out = net(lr[:1], idx)
                assert out.shape == (1, 3, 6 * s, 7 * s)
                assert torch.isfinite(out).all()


def test_registry_lists_model_files_only():
    names = model.available_models()
    for expected in ('bicubic', 'edsr', 'mdsr', 'rcan', 'rdn', 'srresnet', 'swinir', 'vdsr'):
        assert expected in names
    assert 'common' not in names and '__init__' not in names


def test_unknown_model_raises_user_error_listing_models():
    args = option.parse_args(['--model', 'NoSuchNet', '--scale', '2'])
    with pytest.raises(utility.UserError) as err:
        model.Model(args, 'cpu')
    message = str(err.value)
    assert "'NoSuchNet'" in message
    for name in ('edsr', 'mdsr', 'rcan', 'bicubic'):
        assert name in message
    assert 'common' not in message and '\n' not in message


def test_bicubic_has_no_parameters_and_matches_imresize():
    from imresize import imresize
    args = option.parse_args(['--model', 'Bicubic', '--scale', '2+3+4'])
    net = model.Model(args, 'cpu').eval()
    assert not list(net.parameters()) and not net.trainable_parameters()
    lr = torch.rand(1, 3, 9, 8) * 255
    for idx, s in enumerate((2, 3, 4)):
        assert torch.equal(net(lr, idx), imresize(lr, scale=s))


@pytest.mark.parametrize('entry', sorted(LAYOUTS))
def test_edsr_pytorch_state_dict_layout(entry, tmp_path):
    """Same keys and shapes as EDSR-PyTorch; a state_dict of those shapes loads strictly."""
    reference = json.loads(KEYS_JSON.read_text())[entry]
    args = option.parse_args(LAYOUTS[entry])
    with torch.device('meta'):
        net = model.make_net(args)
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == reference

    if entry in BIG:
        weights = {k: torch.empty(shape, device='meta') for k, shape in reference.items()}
        model.load_state_dict_explained(net, weights, entry)
        return
    # Real tensors through --pre_train, as an EDSR-PyTorch checkpoint file would come.
    torch.manual_seed(1)
    weights = {k: torch.randn(shape) for k, shape in reference.items()}
    path = tmp_path / f'{entry}.pt'
    torch.save(weights, path)
    wrapper = model.Model(args.replace(pre_train=str(path)), 'cpu')
    loaded = wrapper.get_model().state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())


def test_mean_shift_is_frozen_edsr_pytorch_mean():
    args = option.parse_args(['--model', 'EDSR', '--scale', '2'] + TINY)
    net = model.make_net(args)
    mean = torch.tensor([0.4488, 0.4371, 0.4040]) * 255
    assert torch.allclose(net.sub_mean.bias, -mean) and torch.allclose(net.add_mean.bias, mean)
    assert torch.equal(net.sub_mean.weight.flatten(1), torch.eye(3))
    assert not net.sub_mean.weight.requires_grad and not net.add_mean.bias.requires_grad


def test_vdsr_starts_as_bicubic_and_keeps_its_signal_through_20_layers():
    """He init keeps activations at scale through the plain 20-conv stack (PyTorch's default
    init shrinks them ~2.5x per layer, so the residual and its gradients vanish); the zero
    last layer makes the untrained network the identity on its (bicubic) input."""
    torch.manual_seed(0)
    net = model.make_net(option.parse_args(['--template', 'VDSR', '--scale', '2']))
    x = torch.rand(1, 3, 24, 24) * 255
    with torch.no_grad():
        assert torch.allclose(net(x), x, atol=1e-3)
        h = net.sub_mean(x)
        stds = []
        for block in net.body[:-1]:
            h = block(h)
            stds.append(h.std().item())
    assert min(stds) > 0.1 * stds[0], stds
    # Once the last layer is non-zero (after the first steps), every layer gets a gradient.
    net.body[-1][0].weight.data.normal_(0, 1e-3)
    (net(x) - x).square().mean().backward()
    assert all(p.grad.abs().max() > 0 for p in net.parameters() if p.requires_grad)
