"""pytorch-fid's ``inception.py`` (``pip install --no-deps pytorch-fid``), imported by file
path with the torchvision stand-in of ``torchvision_standin`` in ``sys.modules`` while it
executes (it subclasses torchvision's Inception blocks); None when pytorch-fid is absent.
Its ``InceptionV3`` then reads pt_inception-2015-12-05-6726825d.pth from torch hub's
checkpoints folder (torch's ``load_url`` finds the file there and downloads nothing).
"""
import importlib.util
import sys

import torchvision_standin


def inception_module():
    spec = importlib.util.find_spec('pytorch_fid')   # does not run its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    path = spec.submodule_search_locations[0] + '/inception.py'
    tv = torchvision_standin.fake_torchvision_inception()
    stubs = {'torchvision': tv, 'torchvision.models': tv.models,
             'torchvision.models.inception': tv.models.inception}
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        file_spec = importlib.util.spec_from_file_location('pytorch_fid_inception', path)
        module = importlib.util.module_from_spec(file_spec)
        file_spec.loader.exec_module(module)
    except FileNotFoundError:
        return None
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module
