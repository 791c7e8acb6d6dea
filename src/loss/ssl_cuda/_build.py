"""Builds and loads the compiled SSL op with torch.utils.cpp_extension.load (ninja).

The build goes to REPO_ROOT/.cache/ssl_ops/<kind>-<key>/ (SSL_OPS_CACHE=DIR puts it in
DIR/<kind>-<key>/ instead, e.g. to time a first-use build), where the key covers what makes
a build unusable elsewhere (torch and CUDA versions, Python, the CPU's instruction set:
the C++ code is compiled with -march=native). Inside that folder ninja rebuilds whatever
source changed, so editing a .cpp/.cu file takes effect on the next use. Any build or load
failure becomes one UserError naming the log file that holds the compiler output.
"""
import contextlib
import hashlib
import os
import platform
import sys
import threading
from pathlib import Path

import torch

import utility

SOURCE_DIR = Path(__file__).resolve().parent
CPU_SOURCES = ('binding.cpp', 'ssl_cpu.cpp', 'graph_loss_cpu.cpp')
CUDA_SOURCE = 'ssl_kernels.cu'
DEFAULT_CACHE_DIR = utility.REPO_ROOT / '.cache' / 'ssl_ops'
# How long the first build takes, as measured and stated in README.md (a test keeps the two equal).
BUILD_TIME = 'about 35 s of compiler CPU time, about 20 s on 2 idle cores'

_lock = threading.Lock()
_module = None


def _cpu_signature():
    """The CPU's instruction-set flags (Linux), else the processor name."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith(('flags', 'Features')):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _want_cuda():
    """Build the CUDA kernels only when torch has CUDA and a CUDA toolkit is installed."""
    if torch.version.cuda is None:
        return False
    from torch.utils.cpp_extension import CUDA_HOME
    return CUDA_HOME is not None


def build_folder(with_cuda):
    key = '|'.join([torch.__version__, str(torch.version.cuda), sys.version,
                    platform.machine(), _cpu_signature()])
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    cache = Path(os.environ.get('SSL_OPS_CACHE') or DEFAULT_CACHE_DIR)
    return cache / f"{'cuda' if with_cuda else 'cpu'}-{digest}"


def _first_error_line(text):
    """The compiler's first 'error:' line, else the first line naming an error, else the last."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for test in (lambda ln: 'error:' in ln.lower(),
                 lambda ln: 'error' in ln.lower() and not ln.startswith('Error building')):
        for line in lines:
            if test(line):
                return line[:300]
    return lines[-1][:300] if lines else 'no compiler output'


@contextlib.contextmanager
def _exclusive(folder):
    """One build per folder at a time across processes (an OS lock, freed when its process
    dies). Holding it, any torch 'lock' file left in the folder comes from a killed build;
    torch would wait for it forever, so it is removed."""
    try:
        import fcntl
    except ImportError:  # not POSIX: torch's own lock file only
        yield
        return
    with open(folder / 'build.flock', 'w') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        (folder / 'lock').unlink(missing_ok=True)
        yield


def build_extension(name, sources, folder, with_cuda=False, verbose=False, extra_cflags=()):
    """Compiles ``sources`` into the Python module ``name`` inside ``folder`` and imports it.

    ``extra_cflags`` go after the usual flags (the tests build the kernels for a smaller
    instruction set, e.g. ``-mno-avx512f``, to check the code path other CPUs take).

    Raises utility.UserError (one line, pointing at ``folder/build.log``) when the
    compiler, ninja or the import fails.
    """
    from torch.utils import cpp_extension
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cflags = ['-O3', '-fopenmp']
    if platform.machine() in ('x86_64', 'AMD64', 'aarch64', 'arm64'):
        cflags.append('-march=native')
    if with_cuda:
        cflags.append('-DSSL_WITH_CUDA')
    cflags += list(extra_cflags)
    log = folder / 'build.log'
    try:
        with _exclusive(folder):
            module = cpp_extension.load(
                name=name, sources=[str(s) for s in sources], build_directory=str(folder),
                extra_cflags=cflags, extra_cuda_cflags=['-O3'], extra_ldflags=['-fopenmp'],
                with_cuda=with_cuda, verbose=verbose)
        log.unlink(missing_ok=True)  # an earlier failure's log no longer applies
        return module
    except (RuntimeError, OSError, ImportError) as e:
        text = str(e)
        cause = e.__cause__
        if cause is not None and getattr(cause, 'output', None):
            out = cause.output
            text += '\n' + (out.decode(errors='replace') if isinstance(out, bytes) else str(out))
        log.write_text(text)
        raise utility.UserError(
            f'building the SSL op failed ({_first_error_line(text)}); full output in {log}; '
            'install a C++ compiler and ninja (pip install ninja), or delete '
            f'{folder} and retry') from None


def load():
    """The compiled op module (built on first use, then taken from the cache)."""
    global _module
    with _lock:
        if _module is None:
            with_cuda = _want_cuda()
            folder = build_folder(with_cuda)
            sources = [SOURCE_DIR / s for s in CPU_SOURCES]
            if with_cuda:
                sources.append(SOURCE_DIR / CUDA_SOURCE)
            if not any(folder.glob('*.so')) and not any(folder.glob('*.pyd')):
                print(f'building the SSL op into {folder} (first use; {BUILD_TIME})',
                      file=sys.stderr, flush=True)
            name = 'ssl_ops_cuda' if with_cuda else 'ssl_ops_cpu'
            _module = build_extension(name, sources, folder, with_cuda,
                                      verbose=os.environ.get('SSL_OPS_VERBOSE') == '1')
        return _module
