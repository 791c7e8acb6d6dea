import sys
from pathlib import Path

import pytest

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
