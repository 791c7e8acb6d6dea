"""The official BSRGAN degradation code of ChrisDud0257/SSL, imported by path from a snapshot.

``SSL_OFFICIAL`` names the snapshot's ``GAN-Based-SR`` folder (the one holding
``train_BSGRAN/utils/utils_blindsr.py``); e.g. extract it from a bare clone with
``git --git-dir=... archive HEAD GAN-Based-SR/train_BSGRAN/utils GAN-Based-SR/train_BSGRAN/models | tar -x -C DIR``.
The code needs OpenCV (``cv2``) and a few stand-ins, installed only while it is imported:

* ``torchvision.utils.make_grid`` (imported by utils_image.py, never called here);
* ``scipy.interpolate.interp2d``, removed from SciPy: a linear interpolant on the regular grid
  built on ``RegularGridInterpolator`` (evaluated on the outer product of the query points,
  as interp2d was);
* ``scipy.finfo`` (removed from SciPy's namespace; utils_parameter_blindsr.py uses it): numpy's.

``load()`` returns None when the snapshot or cv2 is absent.
"""
import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np


class _Interp2dStandIn:
    def __init__(self, x, y, z, kind='linear'):
        from scipy.interpolate import RegularGridInterpolator
        assert kind == 'linear'
        self.f = RegularGridInterpolator((np.asarray(y, float), np.asarray(x, float)),
                                         np.asarray(z, float), method='linear')

    def __call__(self, x, y):
        yy, xx = np.meshgrid(np.sort(np.asarray(y, float)), np.sort(np.asarray(x, float)),
                             indexing='ij')
        return self.f(np.stack([yy, xx], -1))


def root():
    path = os.environ.get('SSL_OFFICIAL', '')
    if not path or not (Path(path) / 'train_BSGRAN' / 'utils' / 'utils_blindsr.py').is_file():
        return None
    return Path(path)


def _exec(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load():
    """namespace(blindsr, param_blindsr, util) of the official modules, or None."""
    base = root()
    if base is None:
        return None
    try:
        import cv2  # noqa: F401
    except ImportError:
        return None
    import scipy
    import scipy.interpolate
    utils = base / 'train_BSGRAN' / 'utils'
    names = ('torchvision', 'torchvision.utils', 'train_BSGRAN', 'train_BSGRAN.utils',
             'train_BSGRAN.utils.utils_image')
    saved = {k: sys.modules.get(k) for k in names}
    saved_interp = scipy.interpolate.interp2d
    had_finfo = hasattr(scipy, 'finfo')
    try:
        if importlib.util.find_spec('torchvision') is None:
            tv = types.ModuleType('torchvision')
            tv.utils = types.ModuleType('torchvision.utils')
            tv.utils.make_grid = None
            sys.modules['torchvision'], sys.modules['torchvision.utils'] = tv, tv.utils
        pkg = types.ModuleType('train_BSGRAN')
        pkg.utils = types.ModuleType('train_BSGRAN.utils')
        sys.modules['train_BSGRAN'], sys.modules['train_BSGRAN.utils'] = pkg, pkg.utils
        scipy.interpolate.interp2d = _Interp2dStandIn
        if not had_finfo:
            scipy.finfo = np.finfo
        util = _exec('train_BSGRAN.utils.utils_image', utils / 'utils_image.py')
        pkg.utils.utils_image = util
        blindsr = _exec('official_utils_blindsr', utils / 'utils_blindsr.py')
        param = _exec('official_utils_parameter_blindsr', utils / 'utils_parameter_blindsr.py')
    finally:
        scipy.interpolate.interp2d = saved_interp
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return types.SimpleNamespace(blindsr=blindsr, param_blindsr=param, util=util)
