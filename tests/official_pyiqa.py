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

from official_loader import exec_file as _exec, restored_modules


def pyiqa_root():
    env = os.environ.get('PYIQA_SRC')
    if env and (Path(env) / 'archs' / 'musiq_arch.py').is_file():
        return Path(env)
    spec = importlib.util.find_spec('pyiqa')
    if spec is not None and spec.submodule_search_locations:
        return Path(spec.submodule_search_locations[0])
    return None


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
    with restored_modules(names):
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


def clipiqa_module(tokenize):
    """pyiqa's ``archs/clipiqa_arch.py`` (with its ``clip_model.py`` and ``constants.py``
    loaded by path) whose ``clip.tokenize`` is ``tokenize`` (the real CLIP tokenizer, or the
    stored ids), or None without pyiqa's source."""
    root = pyiqa_root()
    if root is None:
        return None
    imports = types.ModuleType('pyiqa.archs.clip_imports')
    imports.clip = types.SimpleNamespace(tokenize=tokenize)
    imports.SimpleTokenizer = None
    with restored_modules(('pyiqa.archs.constants', 'pyiqa.archs.clip_model')):
        extra = {'pyiqa.archs.clip_imports': imports,
                 'pyiqa.archs.constants': _exec('pyiqa.archs.constants',
                                                root / 'archs' / 'constants.py'),
                 'pyiqa.archs.clip_model': _exec('pyiqa.archs.clip_model',
                                                 root / 'archs' / 'clip_model.py')}
    arch_util = _arch_util()
    arch_util.load_file_from_url = lambda url, *a, **k: url
    extra['pyiqa.archs.arch_util'] = arch_util
    return load('archs/clipiqa_arch.py', extra)


def clip_tokenizer():
    """``clip.simple_tokenizer.SimpleTokenizer`` from ``$CLIP_SRC`` (the ``clip`` folder of
    openai-clip: simple_tokenizer.py and bpe_simple_vocab_16e6.txt.gz; it needs ftfy and
    regex) or an installed ``clip`` package, or None."""
    folder = os.environ.get('CLIP_SRC')
    if not folder:
        spec = importlib.util.find_spec('clip')
        folder = spec.submodule_search_locations[0] if spec and \
            spec.submodule_search_locations else None
    if not folder or not (Path(folder) / 'simple_tokenizer.py').is_file():
        return None
    try:
        module = _exec('clip_simple_tokenizer', Path(folder) / 'simple_tokenizer.py')
        return module.SimpleTokenizer()
    except ImportError:          # ftfy or regex missing
        return None
    finally:
        sys.modules.pop('clip_simple_tokenizer', None)


def clip_random_state(layout, seed=0):
    """Random weights for CLIP RN50's {key: shape}, rounded to float16 as OpenAI's file is
    (pyiqa's loader casts to float16 and back): He-scaled convs, BN near identity, linear
    layers 1/sqrt(fan_in), embeddings small, logit_scale ln(100) as the trained model."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout.items():
        shape = torch.Size(shape)
        if key == 'logit_scale':
            v = torch.tensor(4.6052)
        elif key.endswith('running_var'):
            v = 1 + 0.1 * torch.rand(shape, generator=g)
        elif key.endswith('num_batches_tracked'):
            continue
        elif len(shape) == 1 and key.endswith('weight'):          # BN / LayerNorm scales
            v = 1 + 0.1 * torch.randn(shape, generator=g)
        elif key in ('token_embedding.weight', 'positional_embedding') \
                or key.endswith('attnpool.positional_embedding'):
            v = 0.02 * torch.randn(shape, generator=g)
        elif key == 'text_projection':
            v = torch.randn(shape, generator=g) / shape[0] ** 0.5
        elif len(shape) >= 2:
            v = torch.randn(shape, generator=g) * (2.0 / shape[1:].numel()) ** 0.5
        else:
            v = 0.05 * torch.randn(shape, generator=g)
        state[key] = v.half()
    return state
