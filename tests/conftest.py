import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / 'src'
SHARED = REPO.parent / 'shared'
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


@pytest.fixture
def shared_dir():
    """../shared (benchmark images, reference data); tests needing it skip without it."""
    if not (SHARED / 'benchmark').is_dir():
        pytest.skip('../shared is not present')
    return SHARED


@pytest.fixture(scope='session')
def vgg_file(tmp_path_factory):
    """A file of random VGG19 weights in torchvision's layout, for --vgg_weights."""
    from vgg_weights import random_vgg19_state
    path = tmp_path_factory.mktemp('vgg') / 'vgg19-random.pth'
    torch.save(random_vgg19_state(), path)
    return path


# Flags of a tiny, fast model for CLI runs: EDSR with one block of 8 features, no workers.
TINY = ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--n_threads', '0']


def make_args(*flags):
    """Parsed options (``option.parse_args``) for ``flags``, as the CLI would build them."""
    import option
    return option.parse_args([str(f) for f in flags])


def tiny_benchmark(root, crops):
    """Makes root/benchmark/Tiny/HR from crops of the bundled Set5 HR images and returns root.
    crops: (Set5 file name, PIL crop box, name of the saved PNG) triples."""
    folder = root / 'benchmark' / 'Tiny' / 'HR'
    folder.mkdir(parents=True)
    for image, box, name in crops:
        path = REPO / 'dataset' / 'benchmark' / 'Set5' / 'HR' / image
        Image.open(path).convert('RGB').crop(box).save(folder / name)
    return root


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """A --dir_data with one small benchmark image (benchmark/Tiny/HR/crop.png, 96x96 from the
    bundled butterfly), so that evaluation after each epoch is quick."""
    return tiny_benchmark(tmp_path_factory.mktemp('data'),
                          [('butterfly.png', (40, 40, 136, 136), 'crop.png')])
