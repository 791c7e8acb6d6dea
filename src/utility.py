"""Paths, user errors, atomic file writes, timers and the read-only argument namespace."""
import errno
import functools
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# SR_EXPERIMENT_ROOT moves run folders elsewhere (the test suite uses it to write into tmp).
EXPERIMENT_ROOT = Path(os.environ.get('SR_EXPERIMENT_ROOT') or REPO_ROOT / 'experiment')
DEFAULT_DATA_DIR = REPO_ROOT / 'dataset'
# The project's version, recorded in files that describe how they were made (manifests).
VERSION = '1.0.0'


class UserError(Exception):
    """A mistake the user can fix (bad flag, missing folder, unreadable image, ...).

    ``main`` prints the message as one line and exits with status 2; the message says
    what is wrong and what to do.
    """


class FrozenNamespace:
    """The parsed arguments: attribute access like argparse.Namespace, but read-only."""

    def __init__(self, **kwargs):
        object.__setattr__(self, '_values', dict(kwargs))

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError(f'args are read-only after parsing (tried to set {name!r})')

    def __contains__(self, name):
        return name in self._values

    def __repr__(self):
        return 'FrozenNamespace(' + ', '.join(f'{k}={v!r}' for k, v in self._values.items()) + ')'

    def __getstate__(self):
        return self._values

    def __setstate__(self, state):
        object.__setattr__(self, '_values', state)

    def as_dict(self):
        return dict(self._values)

    def replace(self, **changes):
        """A copy with some values changed (for tests and benchmarks)."""
        values = dict(self._values)
        values.update(changes)
        return FrozenNamespace(**values)


@functools.lru_cache(maxsize=1)   # read once: os.umask can only be read by setting it
def _new_file_mode():
    """The mode ``open()`` gives a new file (0o666 less the umask).

    mkstemp creates files readable by their owner only; without this, checkpoints and
    metrics on a shared server would be unreadable to the rest of the group.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# Errors that the user fixes by freeing space or by making a folder writable.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


def write_error(error, path, size=None):
    """A UserError for an OSError met while writing ``path`` (``size`` bytes), or None.

    None when the error is not one the user can fix (then it should propagate as is).
    """
    path = Path(path)
    if error.errno in _NO_SPACE:
        free = None
        try:
            free = shutil.disk_usage(path.parent if path.parent.exists() else path).free
        except OSError:
            pass
        need = f'at least {_size(size)}' if size else 'space'
        have = f' ({_size(free)} free)' if free is not None else ''
        return UserError(f'disk full while writing {path}: free {need} on the disk holding '
                         f'{path.parent}{have}')
    if error.errno in _NOT_WRITABLE:
        return UserError(f'cannot write {path} ({os.strerror(error.errno)}); make '
                         f'{path.parent} writable')
    return None


def _size(n):
    """'12.3 MB', '4.1 kB', ... (powers of 1024)."""
    n = float(max(n, 0))
    for unit in ('bytes', 'kB', 'MB', 'GB'):
        if n < 1024 or unit == 'GB':
            return f'{n:.0f} {unit}' if unit == 'bytes' else f'{n:.1f} {unit}'
        n /= 1024


TMP_SUFFIX = '.tmp'


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    A crash leaves either the old file or the new one, never a half-written file (a
    killed process may leave the temporary ``.<name>.<random>.tmp`` beside it, which
    ``remove_temporary_files`` clears).  The new file gets the permissions of an
    ordinary new file.  A full disk or a read-only folder is a UserError naming the
    file; the temporary file is removed and the old file stays.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.' + path.name + '.',
                                   suffix=TMP_SUFFIX)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            if hasattr(os, 'fchmod'):        # POSIX; elsewhere mkstemp's mode stays
                os.fchmod(f.fileno(), _new_file_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if isinstance(e, OSError):
            user = write_error(e, path, len(data))
            if user is not None:
                raise user from None
        raise


def remove_temporary_files(folder):
    """Delete the temporary files that killed atomic writes left in ``folder`` (recursively).

    Returns their paths.  Call it only while no other process writes there (the run lock).
    """
    found = sorted(p for p in Path(folder).rglob('.*' + TMP_SUFFIX) if p.is_file())
    for p in found:
        p.unlink()
    return found


def atomic_torch_save(obj, path):
    """``torch.save`` through a temporary file and ``os.replace``."""
    import torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode('utf-8'))


class Timer:
    """Wall-clock stopwatch: ``toc()`` is seconds since creation or the last ``tic()``."""

    def __init__(self):
        self.tic()

    def tic(self):
        self.t0 = time.time()

    def toc(self):
        return time.time() - self.t0


def load_pt(path, source=None, missing='give the path of an existing file', mmap=False):
    """``torch.load(path, map_location='cpu', weights_only=True)`` with one-line user errors.

    The single place where the project reads a ``.pt`` file.  Nothing beyond tensors and
    plain Python containers is ever unpickled.  Raises UserError naming ``source`` (default:
    the path) when the file is missing (``missing`` says what to do), is a web page (what a
    failed download saves), is truncated or not a torch file, or holds pickled Python objects
    (the message does not repeat torch's hint to load it unsafely).  ``mmap=True`` maps zip-format files instead of reading them whole.
    """
    import torch
    path = Path(path).expanduser()
    source = source or str(path)
    if not path.is_file():
        raise UserError(f'{source}: no such file; {missing}')
    try:
        try:
            return torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            # Files in torch's old (pre-zip) format cannot be mapped: read them whole.
            return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        if _looks_like_web_page(path):
            raise UserError(f'{source} is not a torch file: it looks like a web page (HTML), '
                            f'which a failed or browser download saves; download the file '
                            f'itself again (e.g. curl -L -o FILE URL) and check its size') from None
        text = str(e)
        # torch's weights-only reader blames "weights_only" for any bytes it cannot parse,
        # so pickled objects are named only in what starts like a torch file.
        if ('weights_only' in text or 'Unsupported global' in text) and _torch_header(path):
            raise UserError(f'{source} cannot be read as plain weights: it holds pickled Python '
                            f'objects, which are not loaded for safety; save a plain '
                            f'state_dict (torch.save(model.state_dict(), path))') from None
        first = text.strip().splitlines()[0] if text.strip() else ''
        reason = f'{type(e).__name__}: {first}'.rstrip(': ')[:160]
        raise UserError(f'{source} cannot be read as plain weights ({reason}); the file is '
                        f'truncated or not a torch file') from None


def _head(path, n=1024):
    try:
        with open(path, 'rb') as f:
            return f.read(n)
    except OSError:
        return b''


def _torch_header(path):
    """Whether the file starts as torch.save writes: a zip archive, or (the old format) a
    pickle of protocol 2 or more."""
    return _head(path, 4).startswith((b'PK\x03\x04', b'\x80'))


def _looks_like_web_page(path):
    """Whether the file at ``path`` starts like HTML/XML text: what a download link saves
    when it returns a login, error or redirect page instead of the file.  A torch file
    starts with a zip header ('PK') or a pickle opcode."""
    text = _head(path).lstrip(b'\xef\xbb\xbf').lstrip().lower()
    return text.startswith((b'<!doctype html', b'<html', b'<?xml', b'<head', b'<body', b'<!--')) \
        or b'<html' in text


def layout_problem(state, expected, ignore_prefixes=()):
    """What keeps ``state`` (from :func:`load_pt`) from being the weights ``expected``
    ({key: shape}), as a phrase for a one-line error, or None when it fits.  Keys starting
    with one of ``ignore_prefixes`` (parts the caller does not use) may be present."""
    import torch
    if not isinstance(state, dict):
        return f'holds a {type(state).__name__}, not a dict of tensors'
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected
                  and not str(k).startswith(tuple(ignore_prefixes))]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f'{len(missing)} missing keys such as {missing[0]!r}')
        if unexpected:
            detail.append(f'{len(unexpected)} unexpected keys such as {unexpected[0]!r}')
        return 'does not have the expected layout (' + ', '.join(detail) + ')'
    for key, shape in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(shape):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            return f'has {key} of shape {got} where {tuple(shape)} is expected'
    return None


def run_cli(run, prog, argv=None):
    """Exit status of ``run(argv)`` for the command ``prog`` (e.g. 'main.py'): a UserError
    becomes one line on stderr and status 2, Ctrl-C before ``run`` handles it status 130."""
    import sys
    try:
        return run(argv)
    except UserError as e:
        print(f'{prog}: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr)
        return 130
