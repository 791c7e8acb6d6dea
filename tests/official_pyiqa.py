"""pyiqa's MUSIQ and CLIP-IQA definitions (chaofengc/IQA-PyTorch), imported by file path.

pyiqa pulls torchvision (and huggingface_hub), so it is never installed with its
dependencies; its source comes from ``$PYIQA_SRC`` (the ``pyiqa`` folder of a snapshot or of
the unpacked wheel: ``pip download --no-deps pyiqa``) or from a ``pip install --no-deps
pyiqa``.  The files run with what they import from pyiqa provided here: pyiqa's own
``matlab_utils/padding.py`` and ``data/multiscale_trans_util.py`` loaded by path, and
stand-ins for the registry and for three helpers of ``archs/arch_util.py`` (which imports
torchvision): ``dist_to_mos`` (the probability-weighted class index, 1-based),
``get_url_from_name`` and ``load_pretrained_network`` (a strict load of a local file).
None when no pyiqa source is found.
"""
import importlib.util
import os
import sys
import types
from pathlib import Path

import torch


def pyiqa_root():
    env = os.environ.get('PYIQA_SRC')
    if env and (Path(env) / 'archs' / 'musiq_arch.py').is_file():
        return Path(env)
    spec = importlib.util.find_spec('pyiqa')
    if spec is not None and spec.submodule_search_locations:
        return Path(spec.submodule_search_locations[0])
    return None


def _exec(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _arch_util():
    util = types.ModuleType('pyiqa.archs.arch_util')

    def dist_to_mos(dist):
        return (dist * torch.arange(1, dist.shape[-1] + 1).to(dist)).sum(dim=-1, keepdim=True)

    def load_pretrained_network(net, path, strict=True, weight_keys=None):
        state = torch.load(path, map_location='cpu', weights_only=True)
        if weight_keys is not None:
            state = state[weight_keys]
        net.load_state_dict(state, strict=strict)

    util.dist_to_mos = dist_to_mos
    util.load_pretrained_network = load_pretrained_network
    util.get_url_from_name = lambda name, *a, **k: name
    return util


def load(relpath, extra=None):
    """pyiqa's file ``relpath`` (e.g. 'archs/musiq_arch.py') as a module, or None."""
    root = pyiqa_root()
    if root is None:
        return None
    names = ['pyiqa', 'pyiqa.archs', 'pyiqa.utils', 'pyiqa.data', 'pyiqa.utils.registry',
             'pyiqa.archs.arch_util', 'pyiqa.matlab_utils', 'pyiqa.data.multiscale_trans_util',
             *(extra or {})]
    saved = {name: sys.modules.get(name) for name in names}
    try:
        for name in ('pyiqa', 'pyiqa.archs', 'pyiqa.utils', 'pyiqa.data'):
            sys.modules[name] = types.ModuleType(name)
            sys.modules[name].__path__ = []
        registry = sys.modules['pyiqa.utils.registry'] = types.ModuleType('registry')
        registry.ARCH_REGISTRY = types.SimpleNamespace(register=lambda *a, **k: (lambda f: f))
        sys.modules['pyiqa.archs.arch_util'] = _arch_util()
        padding = _exec('pyiqa.matlab_utils', root / 'matlab_utils' / 'padding.py')
        sys.modules['pyiqa.matlab_utils'] = padding
        _exec('pyiqa.data.multiscale_trans_util', root / 'data' / 'multiscale_trans_util.py')
        for name, module in (extra or {}).items():
            sys.modules[name] = module
        name = 'pyiqa.' + relpath[:-3].replace('/', '.')
        return _exec(name, root / relpath)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def musiq_module():
    return load('archs/musiq_arch.py')


def random_state(keys_and_shapes, seed=0):
    """Random weights for {key: shape}: matrices and convs ~ N(0, 1/fan_in), norms' weights
    near 1, biases and embeddings small."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in keys_and_shapes.items():
        shape = torch.Size(shape)
        if len(shape) >= 2 and not key.endswith(('_emb', 'cls')):
            v = torch.randn(shape, generator=g) / shape[1:].numel() ** 0.5
        elif ('norm' in key or '.gn' in key or key.startswith('gn')) and key.endswith('weight'):
            v = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            v = 0.05 * torch.randn(shape, generator=g)
        state[key] = v
    return state
