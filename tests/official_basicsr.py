"""BasicSR's metric files (``basicsr/metrics/niqe.py``, ``basicsr/metrics/fid.py``), imported
by file path from a ``pip install --no-deps basicsr``.

BasicSR's package ``__init__`` imports torchvision, so each file is executed on its own with
what it imports from basicsr provided the same way: ``basicsr.utils.color_util`` and
``basicsr.utils.matlab_functions`` (plain numpy/torch files) and ``basicsr.metrics.metric_util``
are themselves BasicSR's files loaded by path; only the registry (a no-op decorator) is a stub.
The stand-ins live in ``sys.modules`` only while the files execute.  NIQE needs cv2
(opencv-python-headless); None is returned when basicsr or cv2 is absent.
"""
import importlib.util
import sys
import types

from official_loader import exec_file as _exec, restored_modules


def _root():
    spec = importlib.util.find_spec('basicsr')  # does not run basicsr/__init__.py
    if spec is None or not spec.submodule_search_locations:
        return None
    return spec.submodule_search_locations[0]


def _load(relpath, extra_stubs=()):
    root = _root()
    if root is None:
        return None
    names = ['basicsr', 'basicsr.utils', 'basicsr.metrics', 'basicsr.archs',
             'basicsr.utils.registry', 'basicsr.utils.color_util',
             'basicsr.utils.matlab_functions', 'basicsr.metrics.metric_util', *extra_stubs]
    try:
        with restored_modules(names):
            return _stubbed_load(root, relpath, extra_stubs)
    except (FileNotFoundError, ImportError):
        return None


def _stubbed_load(root, relpath, extra_stubs):
    """Run BasicSR's ``relpath`` with its basicsr imports stood in (inside _load's block)."""
    for name in ('basicsr', 'basicsr.utils', 'basicsr.metrics', 'basicsr.archs'):
        sys.modules[name] = types.ModuleType(name)
        sys.modules[name].__path__ = []
    registry = sys.modules['basicsr.utils.registry'] = types.ModuleType('registry')
    registry.METRIC_REGISTRY = registry.ARCH_REGISTRY = types.SimpleNamespace(
        register=lambda *a, **k: (lambda f: f))
    color = _exec('basicsr.utils.color_util', f'{root}/utils/color_util.py')
    sys.modules['basicsr.utils'].bgr2ycbcr = color.bgr2ycbcr
    _exec('basicsr.utils.matlab_functions', f'{root}/utils/matlab_functions.py')
    _exec('basicsr.metrics.metric_util', f'{root}/metrics/metric_util.py')
    for name, module in extra_stubs.items() if isinstance(extra_stubs, dict) else ():
        sys.modules[name] = module
    return _exec('basicsr_' + relpath.replace('/', '_')[:-3], f'{root}/{relpath}')


def niqe_module():
    """BasicSR's ``metrics/niqe.py`` (``calculate_niqe``), or None without basicsr or cv2."""
    return _load('metrics/niqe.py')


def fid_module():
    """BasicSR's ``metrics/fid.py`` (``calculate_fid``; its InceptionV3 import is stubbed, the
    network is compared with pytorch-fid's instead), or None without basicsr."""
    arch = types.ModuleType('basicsr.archs.inception')
    arch.InceptionV3 = None
    return _load('metrics/fid.py', {'basicsr.archs.inception': arch})


def psnr_ssim_module():
    """BasicSR's ``metrics/psnr_ssim.py`` (``calculate_psnr``, ``calculate_ssim``: the SSL
    paper's PSNR/SSIM), or None without basicsr or cv2."""
    return _load('metrics/psnr_ssim.py')
