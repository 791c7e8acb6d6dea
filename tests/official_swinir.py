"""The official SwinIR network (BasicSR's copy of network_swinir.py), imported by file path.

BasicSR is installed with ``pip install --no-deps basicsr``; its package ``__init__`` needs
torchvision, which this project never installs, so ``basicsr/archs/swinir_arch.py`` is
executed on its own with the two things it imports stubbed: the arch registry (a no-op
decorator) and ``arch_util``'s ``to_2tuple`` / ``trunc_normal_``.  The stubs live in
``sys.modules`` only while the file executes.  The network code itself is BasicSR's,
untouched.  Also: the official test-time padding and random weights in the official layout.
"""
import importlib.util
import types

import torch

from official_loader import exec_file, restored_modules


def load_official_module():
    """The module ``swinir_arch`` (with its ``SwinIR`` class), or None without basicsr."""
    spec = importlib.util.find_spec('basicsr')  # does not run basicsr/__init__.py
    if spec is None or not spec.submodule_search_locations:
        return None
    path = spec.submodule_search_locations[0] + '/archs/swinir_arch.py'
    stubs = {}
    for name in ('basicsr', 'basicsr.utils', 'basicsr.archs'):
        stubs[name] = types.ModuleType(name)
        stubs[name].__path__ = []
    stubs['basicsr.utils.registry'] = types.ModuleType('basicsr.utils.registry')
    stubs['basicsr.utils.registry'].ARCH_REGISTRY = types.SimpleNamespace(
        register=lambda: (lambda cls: cls))
    util = stubs['basicsr.archs.arch_util'] = types.ModuleType('basicsr.archs.arch_util')
    util.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
    util.trunc_normal_ = torch.nn.init.trunc_normal_
    try:
        with restored_modules(['basicsr.archs.swinir_arch'], stubs):
            return exec_file('basicsr.archs.swinir_arch', path)
    except FileNotFoundError:
        return None


def official_net(module, args, drop_path_rate=0.1):
    """``module.SwinIR`` built with define_model()'s arguments from our parsed ``args``."""
    return module.SwinIR(upscale=args.scale[0], in_chans=args.n_colors, img_size=args.img_size,
                         window_size=args.window_size, img_range=1.0, depths=list(args.depths),
                         embed_dim=args.embed_dim, num_heads=list(args.num_heads),
                         mlp_ratio=args.mlp_ratio, upsampler=args.upsampler,
                         resi_connection=args.resi_connection, drop_path_rate=drop_path_rate)


def official_padded_forward(net, lq, scale, window=8):
    """main_test_swinir.py's inference: lq [1, C, h, w] in [0, 1] -> SR [1, C, s*h, s*w].

    Bottom/right padding by (h // window + 1) * window - h rows (likewise columns) with the
    flipped image, forward, crop.
    """
    _, _, h, w = lq.shape
    h_pad = (h // window + 1) * window - h
    w_pad = (w // window + 1) * window - w
    lq = torch.cat([lq, torch.flip(lq, [2])], 2)[:, :, :h + h_pad, :]
    lq = torch.cat([lq, torch.flip(lq, [3])], 3)[:, :, :, :w + w_pad]
    return net(lq)[..., :h * scale, :w * scale]


def random_weights(state_dict, seed=0, last_gain=0.3):
    """Random values for a SwinIR state_dict's floating parameters (buffers kept).

    Scaled so that the untrained network is far from the identity but its output stays
    mostly within [0, 1]: weights N(0, 1/fan_in), relative position biases N(0, 1) (they
    shape the attention), LayerNorm gains 1 + N(0, 0.1^2), biases N(0, 0.1^2), and the
    last conv of the head (``last`` keys) times ``last_gain``.
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    float_keys = [k for k, v in state_dict.items()
                  if v.dtype.is_floating_point and not k.endswith('attn_mask')]
    last = max((k for k in float_keys if k.startswith(('conv_last', 'upsample'))),
               key=float_keys.index)
    last_layer = last.rsplit('.', 1)[0]
    for key, value in state_dict.items():
        if key not in float_keys:
            out[key] = value.clone()
            continue
        noise = torch.randn(value.shape, generator=g)
        if key.endswith('relative_position_bias_table'):
            value = noise
        elif key.endswith('weight') and value.dim() > 1:
            value = noise / value[0].numel() ** 0.5
        elif key.endswith('weight'):
            value = 1 + 0.1 * noise
        else:
            value = 0.1 * noise
        if key.startswith(last_layer + '.'):
            value = value * last_gain
        out[key] = value
    return out
