"""Official definitions to compare against, executed from their files (never copied here).

Two sources, both optional (tests skip, or compare against the fixtures only, without them):

* BasicSR's pip package (``pip install --no-deps basicsr``): its package ``__init__`` needs
  torchvision, so a file such as ``archs/discriminator_arch.py`` is executed on its own with
  the BasicSR modules it imports replaced by small stand-ins (see ``exec_official``).
* The SSL repository (ChrisDud0257/SSL): ``SSL_OFFICIAL_REPO`` names a snapshot, either a
  checkout or a bare git directory (``git --git-dir=... show HEAD:path`` is used); paths are
  relative to its ``GAN-Based-SR/`` folder.  tests/reference/make_ssl_fixtures.py writes the
  fixtures in tests/data/ from it.
"""
import importlib.util
import os
import subprocess
import types
from pathlib import Path

import torch

from official_loader import restored_modules

ENV = 'SSL_OFFICIAL_REPO'


def basicsr_text(relpath):
    """The text of ``basicsr/<relpath>`` of the installed pip package, or None."""
    spec = importlib.util.find_spec('basicsr')       # does not run basicsr/__init__.py
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / relpath
    return path.read_text() if path.is_file() else None


def ssl_repo_text(relpath, root=None):
    """The text of ``GAN-Based-SR/<relpath>`` in the SSL snapshot ``root`` (default: the
    ``SSL_OFFICIAL_REPO`` environment variable), or None without one."""
    root = root or os.environ.get(ENV)
    if not root:
        return None
    full = f'GAN-Based-SR/{relpath}'
    if (Path(root) / full).is_file():
        return (Path(root) / full).read_text()
    proc = subprocess.run(['git', f'--git-dir={root}', 'show', f'HEAD:{full}'],
                          capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def _registry_stub():
    stub = types.ModuleType('basicsr.utils.registry')
    register = types.SimpleNamespace(register=lambda *a, **k: (lambda obj: obj))
    stub.ARCH_REGISTRY = stub.LOSS_REGISTRY = stub.MODEL_REGISTRY = register
    return stub


def stub(name, **attrs):
    """A stand-in module ``name`` holding ``attrs``."""
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def exec_official(text, name, extra=None):
    """Execute an official file's ``text`` as module ``name`` and return it.

    ``basicsr``, ``basicsr.utils``, ``basicsr.archs``, ``basicsr.losses`` become empty
    packages and ``basicsr.utils.registry`` a no-op registry while the file runs; ``extra``
    maps further module names to stand-ins (or executed official modules: a relative import
    ``from .x import y`` in a file named ``basicsr.losses.z`` finds ``basicsr.losses.x``
    there).  The official code itself is untouched.
    """
    stubs = {}
    for pkg in ('basicsr', 'basicsr.utils', 'basicsr.archs', 'basicsr.losses'):
        stubs[pkg] = types.ModuleType(pkg)
        stubs[pkg].__path__ = []
    stubs['basicsr.utils.registry'] = _registry_stub()
    stubs.update(extra or {})
    with restored_modules(stubs=stubs):
        module = types.ModuleType(name)
        module.__file__ = f'<official {name}>'
        module.__package__ = name.rpartition('.')[0]
        exec(compile(text, module.__file__, 'exec'), module.__dict__)
    return module


def random_state(state_dict, seed):
    """Random values for every floating tensor of ``state_dict`` (same keys and shapes):
    weights N(0, 1/fan_in), 1-D tensors (biases, norm gains) 1 + N(0, 0.1^2) for
    ``weight``/``running_var`` and N(0, 0.1^2) otherwise; integer buffers kept."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state_dict.items():
        if not value.is_floating_point():
            out[key] = value.clone()
        elif value.dim() >= 2:
            fan_in = value[0].numel()
            out[key] = torch.randn(value.shape, generator=gen) / fan_in ** 0.5
        elif key.endswith(('weight', 'running_var')):
            out[key] = 1 + 0.1 * torch.randn(value.shape, generator=gen)
            if key.endswith('running_var'):
                out[key] = out[key].abs()
        else:
            out[key] = 0.1 * torch.randn(value.shape, generator=gen)
    return out
