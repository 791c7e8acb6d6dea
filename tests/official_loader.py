"""Official definition files run by path, with stand-ins for what they import.

The one way the tests load official code that cannot be imported whole (a package whose
``__init__`` pulls torchvision, as basicsr's and pyiqa's do): ``exec_file`` runs one file
as a module, and ``restored_modules`` keeps the stand-ins and the modules registered while
it runs in ``sys.modules`` for the block only, so nothing leaks into other tests.
"""
import contextlib
import importlib.util
import sys


def exec_file(name, path):
    """Run the Python file ``path`` as the module ``name`` (put in ``sys.modules`` before it
    runs, as an import would) and return it; FileNotFoundError when the file is absent."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def restored_modules(names=(), stubs=None):
    """Within the block ``sys.modules`` holds ``stubs`` (name -> module) and whatever the
    block registers; afterwards each name of ``names`` and ``stubs`` is as it was before
    (names that were absent are removed)."""
    stubs = dict(stubs or {})
    saved = {name: sys.modules.get(name) for name in (*names, *stubs)}
    sys.modules.update(stubs)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
