import sys
from pathlib import Path

import pytest
import torch

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
