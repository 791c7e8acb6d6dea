"""Lazy registries by file name: ``--model EDSR`` is ``src/model/edsr.py``.

One rule for every package that holds pluggable parts (models, losses, datasets, metrics,
degradations): an entry is a file ``src/<package>/<name>.py`` whose name is a lower-case
identifier not starting with '_' (those are helpers), that defines the package's factory
function (``make_model``, ``make_loss``, ...) at module level.  Listing reads the files'
text instead of importing them, so a mistyped name is refused before any heavy module (a
compiled op, a network's weights) is touched, and a file that fails to import does not hide
the others.
"""
import ast
import functools
import re
from importlib import import_module
from pathlib import Path

import utility

SRC = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def _factory_pattern(factory):
    return re.compile(rf'^(def\s+{factory}\s*\(|{factory}\s*=)', re.MULTILINE)


def names(package, factory):
    """Sorted lower-case names of the entries of ``src/<package>/`` (see module docstring)."""
    found = []
    pattern = _factory_pattern(factory)
    for path in (SRC / package).glob('*.py'):
        stem = path.stem
        if stem.startswith('_') or stem != stem.lower() or not stem.isidentifier():
            continue
        try:
            text = path.read_text(encoding='utf-8', errors='replace')
        except OSError:
            continue
        if pattern.search(text):
            found.append(stem)
    return sorted(found)


def load(package, name, factory, flag):
    """The module of entry ``name`` (any case) of ``src/<package>/``.

    Raises utility.UserError naming ``flag`` (e.g. '--model') and the available entries
    when there is no such file.
    """
    key = str(name).lower()
    available = names(package, factory)
    if key not in available:
        raise utility.UserError(f'unknown {flag} {name!r}; available (any case): '
                                f'{", ".join(available) or "none"}')
    return import_module(f'{package}.{key}')


@functools.lru_cache(maxsize=None)
def declared(package, name, trait):
    """The literal value of the module-level assignment ``trait = ...`` in
    ``src/<package>/<name>.py``, read from the file's text without importing it; None when
    the file or the assignment is absent or not a literal (e.g. ``FLAGS = ('d_pre_train',)``)."""
    path = SRC / package / f'{str(name).lower()}.py'
    try:
        tree = ast.parse(path.read_text(encoding='utf-8'))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == trait
                                                 for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return None
    return None


def flag_owners(package, factory, trait='FLAGS'):
    """{flag dest: [entry names]} over the entries of ``src/<package>/`` that declare
    ``trait`` (a tuple of argparse dests read only by that entry)."""
    owners = {}
    for entry in names(package, factory):
        for dest in declared(package, entry, trait) or ():
            owners.setdefault(dest, []).append(entry)
    return owners
