"""Helpers to run src/main.py in a subprocess, as a user would."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAIN = REPO / 'src' / 'main.py'


def run_main(args, exp_root=None, cwd=None, timeout=600, launcher=None):
    """Run ``python src/main.py *args``; returns CompletedProcess (text)."""
    env = dict(os.environ)
    env.pop('SR_EXPERIMENT_ROOT', None)
    if exp_root is not None:
        env['SR_EXPERIMENT_ROOT'] = str(exp_root)
    env.setdefault('OMP_NUM_THREADS', '2')
    cmd = (launcher or [sys.executable]) + [str(MAIN)] + [str(a) for a in args]
    return subprocess.run(cmd, cwd=cwd or REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def assert_user_error(proc, *needles):
    """Exit 2, one line on stderr naming every needle, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert 'Traceback' not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
