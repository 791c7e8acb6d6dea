"""Where the perceptual metrics' weight files live, and reading them with one-line errors.

Nothing is ever downloaded.  Two kinds of file:

* backbones: torchvision's ImageNet state_dicts under their published names in torch hub's
  cache, ``torch.hub.get_dir()/checkpoints/`` (``$TORCH_HOME/hub/checkpoints``), where
  torchvision, lpips and pyiqa put them on a user's machine;
* heads: LPIPS's v0.1 linear layers (``alex.pth``, ``vgg.pth``) and DISTS's ``weights.pt``
  (alpha, beta), read from the installed ``lpips`` / ``DISTS_pytorch`` / ``torchmetrics``
  package's own files.  Those packages import torchvision, so they are located with
  ``importlib`` (find_spec / the distribution's file list) and never imported.

``--metric_weights DIR`` is searched first for every file, under the same file names.
"""
import importlib.metadata
import importlib.util
import os
from pathlib import Path

import torch

import utility

# name -> (file name, where it is published)
BACKBONES = {
    'alexnet': ('alexnet-owt-7be5be79.pth',
                'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth'),
    'vgg16': ('vgg16-397923af.pth', 'https://download.pytorch.org/models/vgg16-397923af.pth'),
    # The perceptual losses' network (src/loss/_vgg.py), found by the same rule.
    'vgg19': ('vgg19-dcbb9e9d.pth', 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'),
    # pytorch-fid's port of TensorFlow's FID Inception (torchvision's Inception3 layout with
    # 1008 classes); BasicSR's FID reads the same file.
    'fid_inception': ('pt_inception-2015-12-05-6726825d.pth',
                      'https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
                      'pt_inception-2015-12-05-6726825d.pth'),
}

# pyiqa's trained IQA networks (IQA-PyTorch's releases), read where pyiqa caches them too.
BACKBONES['musiq_koniq'] = ('musiq_koniq_ckpt-e95806b9.pth',
                            'https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/'
                            'musiq_koniq_ckpt-e95806b9.pth')
# OpenAI's CLIP ResNet-50 (the TorchScript archive clip.load('RN50') downloads, or its
# state_dict saved as a plain file of the same name).
BACKBONES['clip_rn50'] = ('RN50.pt', 'https://openaipublic.azureedge.net/clip/models/'
                          'afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/'
                          'RN50.pt')

# Folders besides torch hub's checkpoints where the owning package caches a file.
_ALSO_IN = {'musiq_koniq': lambda: [Path(torch.hub.get_dir()) / 'pyiqa'],
            'clip_rn50': lambda: [Path(torch.hub.get_dir()) / 'pyiqa',
                                  Path(os.path.expanduser('~/.cache/clip'))]}

# What each backbone file is, for the messages.
_DESCRIPTIONS = {'alexnet': "torchvision's ImageNet alexnet",
                 'vgg16': "torchvision's ImageNet vgg16",
                 'vgg19': "torchvision's ImageNet vgg19",
                 'fid_inception': "the FID Inception weights of pytorch-fid and BasicSR",
                 'musiq_koniq': "pyiqa's MUSIQ trained on KonIQ-10k, create_metric('musiq')",
                 'clip_rn50': "OpenAI's CLIP ResNet-50, which CLIP-IQA uses"}

# head -> (file name, [(package, path inside the package)], where it is published)
HEADS = {
    'lpips_alex': ('alex.pth', [('lpips', 'weights/v0.1/alex.pth'),
                                ('torchmetrics', 'functional/image/lpips_models/alex.pth')],
                   'pip install --no-deps lpips (lpips/weights/v0.1/alex.pth, from '
                   'github.com/richzhang/PerceptualSimilarity)'),
    'lpips_vgg': ('vgg.pth', [('lpips', 'weights/v0.1/vgg.pth'),
                              ('torchmetrics', 'functional/image/lpips_models/vgg.pth')],
                  'pip install --no-deps lpips (lpips/weights/v0.1/vgg.pth, from '
                  'github.com/richzhang/PerceptualSimilarity)'),
    'dists': ('weights.pt', [('DISTS_pytorch', 'weights.pt')],
              'pip install --no-deps DISTS_pytorch (DISTS_pytorch/weights.pt, from '
              'github.com/dingkeyan93/DISTS)'),
    'niqe': ('niqe_pris_params.npz', [('basicsr', 'metrics/niqe_pris_params.npz')],
             'pip install --no-deps basicsr (basicsr/metrics/niqe_pris_params.npz, NIQE\'s '
             'pristine model from github.com/XPixelGroup/BasicSR)'),
}

# Distribution names where they differ from the import name.
_DISTRIBUTIONS = {'DISTS_pytorch': 'DISTS-pytorch'}


def hub_checkpoints():
    """torch hub's checkpoint folder (honours $TORCH_HOME and $XDG_CACHE_HOME)."""
    return Path(torch.hub.get_dir()) / 'checkpoints'


def _installed_files(package, relpath):
    """Paths of ``relpath`` in the installed ``package``, found without importing it."""
    found = []
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found.append(Path(folder) / relpath)
    # The distribution's file list also knows copies installed outside the package folder
    # (DISTS_pytorch's wheel puts weights.pt in sys.prefix too).
    try:
        files = importlib.metadata.files(_DISTRIBUTIONS.get(package, package)) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    name = Path(relpath).name
    for f in files:
        if f.name == name and (str(f).replace('\\', '/').endswith(package + '/' + relpath)
                               or '..' in f.parts):
            found.append(Path(f.locate()))
    return found


def _first_file(candidates):
    for path in candidates:
        if path.is_file():
            return path
    return None


def backbone_path(arch, weights_dir, what, flag='put it in the folder given with --metric_weights'):
    """The weights file of ``arch`` (a key of BACKBONES) for ``what`` (a metric or loss name,
    as the message names it).

    Looks in ``weights_dir`` (--metric_weights, may be '') then in torch hub's cache
    (``$TORCH_HOME/hub/checkpoints``, and where pyiqa / clip cache their files); UserError
    naming the file, where it is published and where to put it when absent (``flag``: the
    other way to give it, for the message).
    """
    name, url = BACKBONES[arch]
    places = ([Path(os.path.expanduser(weights_dir))] if weights_dir else []) + [hub_checkpoints()]
    places += _ALSO_IN.get(arch, list)()
    path = _first_file([p / name for p in places])
    if path is None:
        raise utility.UserError(
            f'{what} needs {name} ({_DESCRIPTIONS[arch]}, published at {url}); it is '
            f'not in {" or ".join(str(p) for p in places)}: download it once and put it in '
            f'{hub_checkpoints()} (or {flag})')
    return path


def head_path(head, weights_dir, what):
    """The file of ``head`` (a key of HEADS) for metric ``what``: --metric_weights first,
    then the installed packages' own copies; UserError when none exists."""
    name, in_packages, published = HEADS[head]
    candidates = [Path(os.path.expanduser(weights_dir)) / name] if weights_dir else []
    for package, relpath in in_packages:
        candidates += _installed_files(package, relpath)
    path = _first_file(candidates)
    if path is None:
        where = f'in {Path(os.path.expanduser(weights_dir)) / name} nor ' if weights_dir else ''
        raise utility.UserError(
            f'{what} needs {name} ({published}); it is neither {where}in an installed '
            f'{" or ".join(p for p, _ in in_packages)} package: install the package as shown '
            f'or put the file in a folder given with --metric_weights')
    return path


def _refuse(path, what, problem):
    raise utility.UserError(f'{path} {problem}; {what} needs the published file of that name')


def load_tensors(path, what, expected, ignore_prefixes=()):
    """Read a weights-only torch file and check its layout.

    expected: {key: shape}; keys starting with one of ``ignore_prefixes`` (e.g. a
    classifier the metric does not use) are allowed and dropped.  Returns {key: float32
    CPU tensor}.  UserError (one line) for an unreadable file or another layout.
    """
    # mmap: the classifiers we ignore (0.5 GB for VGG16) are never read.
    state = utility.load_pt(path, source=f'{path} ({what})', mmap=True)
    problem = utility.layout_problem(state, expected, ignore_prefixes)
    if problem:
        _refuse(path, what, problem)
    out = {}
    for key in expected:
        value = state[key]
        if not value.is_floating_point() or not torch.isfinite(value).all():
            _refuse(path, what, f'has non-finite or non-float values in {key}')
        out[key] = value.detach().to(torch.float32).contiguous().clone()
    return out
