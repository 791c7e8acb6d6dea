"""The official SPSR / BebyGAN / RankSRGAN code of the SSL repository, read by file path.

``SSL_OFFICIAL`` names a checkout (or extracted copy) of ChrisDud0257/SSL; without it the
live comparisons skip and the tests compare against the stored fixture
(tests/data/ssl_gan_recipes.pt, written by tests/reference/make_ssl_gan_fixtures.py from
the same files).  Nothing here is the official code: the arch files are executed as they
are, with stand-ins for what they import (the arch registry, torchvision, arch_util), and
from the model files only the named top-level functions and classes are compiled
(``model_file_defs``), because the rest of those files needs a whole BasicSR install.

Also the seeded random weights in an official layout (``seeded_weights``): the fixture
stores the layout (key names, shapes, the keys that share one tensor, the values of
non-trainable constants such as SPSR's gradient kernels), so tests rebuild the same file
without the official code.
"""
import ast
import math
import os
import types
import typing
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from official_loader import exec_file, restored_modules

GAN_SR = 'GAN-Based-SR/basicsr'
FIXTURE = Path(__file__).resolve().parent / 'data' / 'ssl_gan_recipes.pt'


def official_root():
    """The SSL checkout named by $SSL_OFFICIAL, or None."""
    root = os.environ.get('SSL_OFFICIAL', '')
    if root and (Path(root) / GAN_SR).is_dir():
        return Path(root)
    return None


def load_arch(root, name):
    """Execute ``GAN-Based-SR/basicsr/archs/<name>.py`` with stand-ins; returns the module."""
    path = Path(root) / GAN_SR / 'archs' / f'{name}.py'
    stubs = {}
    for pkg in ('basicsr', 'basicsr.utils', 'basicsr.archs', 'torchvision'):
        stubs[pkg] = types.ModuleType(pkg)
        stubs[pkg].__path__ = []
    registry = stubs['basicsr.utils.registry'] = types.ModuleType('basicsr.utils.registry')
    registry.ARCH_REGISTRY = types.SimpleNamespace(register=lambda: (lambda cls: cls))
    util = stubs['basicsr.archs.arch_util'] = types.ModuleType('basicsr.archs.arch_util')
    util.ResidualBlockNoBN = None          # imported by ranksrgan_arch.py, never used there
    util.default_init_weights = None
    with restored_modules([f'basicsr.archs.{name}'], stubs):
        return exec_file(f'basicsr.archs.{name}', path)


def model_file_defs(root, name, wanted):
    """The top-level defs ``wanted`` (and the module constants) of
    ``GAN-Based-SR/basicsr/models/<name>.py``, compiled on their own in a namespace with
    torch, nn, F, np, math, typing: {name: object}."""
    path = Path(root) / GAN_SR / 'models' / f'{name}.py'
    tree = ast.parse(path.read_text())
    keep = [node for node in tree.body
            if (isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in wanted)
            or (isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets)
                and 'TypeVar' in ast.unparse(node.value))]
    found = {n.name for n in keep if not isinstance(n, ast.Assign)}
    missing = set(wanted) - found
    if missing:
        raise LookupError(f'{path} has no top-level {sorted(missing)}')
    namespace = {'torch': torch, 'nn': _cpu_nn(), 'F': F, 'np': np, 'math': math,
                 'typing': typing, 'functools': __import__('functools')}
    code = compile(ast.Module(body=keep, type_ignores=[]), str(path), 'exec')
    exec(code, namespace)
    return {k: namespace[k] for k in wanted}


class _CPUParameter(nn.Parameter):
    """nn.Parameter whose ``.cuda()`` is a no-op: the model files' gradient operators call
    ``nn.Parameter(...).cuda()`` in their constructors."""

    def cuda(self, *args, **kwargs):
        return self


def _cpu_nn():
    """torch.nn with Parameter replaced by _CPUParameter (for the model files only)."""
    proxy = types.ModuleType('nn')
    proxy.__dict__.update(nn.__dict__)
    proxy.Parameter = _CPUParameter
    return proxy


# ----------------------------------------------------------------------------- layouts

def layout_of(net):
    """What a released file of ``net`` looks like, without its values: {'shapes': {key:
    shape}, 'aliases': {key: key it shares a tensor with (the one loaded last)}, 'constants':
    {key: value} for non-trainable parameters (fixed kernels)}."""
    state = net.state_dict(keep_vars=True)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    by_ptr, aliases = {}, {}
    for k, v in state.items():
        by_ptr.setdefault(v.data_ptr(), []).append(k)
    for keys in by_ptr.values():
        for k in keys[:-1]:
            aliases[k] = keys[-1]
    constants = {k: v.detach().clone() for k, v in state.items()
                 if isinstance(v, nn.Parameter) and not v.requires_grad}
    return {'shapes': shapes, 'aliases': aliases, 'constants': constants}


def seeded_weights(layout, seed, gain=1.0, shift=None):
    """A state_dict in ``layout`` with seeded random values: conv/linear weights
    N(0, gain^2 / fan_in), biases N(0, 0.01^2), BatchNorm gains 1 + N(0, 0.1^2), shifts and
    running means N(0, 0.1^2), running variances 1 + U(0, 0.2), counters 0; constants as
    stored; aliased keys hold one tensor's values; ``shift`` {key: number} adds a constant
    (e.g. 0.5 to the last bias, so that outputs spread around mid-grey).  Key order is the
    layout's."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in layout['shapes'].items():
        leaf = key.rsplit('.', 1)[-1]
        if key in layout['constants']:
            value = layout['constants'][key].clone()
        elif leaf == 'num_batches_tracked':
            value = torch.zeros(shape, dtype=torch.long)
        elif leaf == 'running_var':
            value = 1 + 0.2 * torch.rand(shape, generator=g)
        elif leaf == 'running_mean' or (leaf == 'bias' and len(shape) == 1 and _is_bn(key, layout)):
            value = 0.1 * torch.randn(shape, generator=g)
        elif leaf == 'weight' and len(shape) == 1:
            value = 1 + 0.1 * torch.randn(shape, generator=g)
        elif leaf == 'weight':
            fan_in = math.prod(shape[1:])
            value = torch.randn(shape, generator=g) * (gain / math.sqrt(fan_in))
        else:
            value = 0.01 * torch.randn(shape, generator=g)
        out[key] = value
    for key, value in (shift or {}).items():
        out[key] = out[key] + value
    for key, winner in layout['aliases'].items():
        out[key] = out[winner]
    return {k: v.clone() for k, v in out.items()}


def _is_bn(key, layout):
    return key.rsplit('.', 1)[0] + '.running_mean' in layout['shapes']


def fixture():
    """The stored fixture dict (see tests/reference/make_ssl_gan_fixtures.py)."""
    return torch.load(FIXTURE, weights_only=True)
