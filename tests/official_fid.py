"""pytorch-fid's ``inception.py`` (``pip install --no-deps pytorch-fid``), imported by file
path with the torchvision stand-in of ``torchvision_standin`` in ``sys.modules`` while it
executes (it subclasses torchvision's Inception blocks); None when pytorch-fid is absent.
Its ``InceptionV3`` then reads pt_inception-2015-12-05-6726825d.pth from torch hub's
checkpoints folder (torch's ``load_url`` finds the file there and downloads nothing).
"""
import importlib.util

import torchvision_standin
from official_loader import exec_file, restored_modules


def inception_module():
    spec = importlib.util.find_spec('pytorch_fid')   # does not run its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    path = spec.submodule_search_locations[0] + '/inception.py'
    tv = torchvision_standin.fake_torchvision_inception()
    stubs = {'torchvision': tv, 'torchvision.models': tv.models,
             'torchvision.models.inception': tv.models.inception}
    try:
        with restored_modules(['pytorch_fid_inception'], stubs):
            return exec_file('pytorch_fid_inception', path)
    except FileNotFoundError:
        return None
