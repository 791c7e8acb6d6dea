"""Soak: kill -9 a small L1+SSL+SPL training run at random moments, resume with --load each time.

    python bench/soak_kill.py [--kills 10] [--epochs 8] [--seed 0]

One uninterrupted run gives the reference weights.  Then the same run is started and
killed (SIGKILL) --kills times: at a random moment, or (every third kill) the moment a
temporary checkpoint file appears, i.e. during a checkpoint write.  After each kill the
run continues with --load.  At the end: the final weights against the reference (max
absolute difference; torch.equal), leftover .tmp files, and any --load that failed.
Not part of the test suite (it takes minutes).
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
MAIN = REPO / 'src' / 'main.py'


def run_args(data, save, epochs, *extra):
    return ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--scale', '2',
            '--data_train', 'Sample', '--data_test', 'Tiny', '--dir_data', str(data),
            '--patch_size', '32', '--batch_size', '4', '--test_every', '4',
            '--epochs', str(epochs),
            '--decay', '2', '--lr', '1e-3', '--loss', '1*L1+0.1*SSL+1*SPL',
            '--ssl_search', '11', '--ssl_window', '5', '--n_threads', '0',
            '--save', save, *extra]


def _holds_lock(folder, pid):
    try:
        return f'"pid": {pid},' in (folder / 'run.lock').read_text()
    except OSError:
        return False


def start(argv, env, log):
    return subprocess.Popen([sys.executable, str(MAIN)] + argv, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--kills', type=int, default=10)
    p.add_argument('--epochs', type=int, default=12)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--max_delay', type=float, default=None,
                   help='largest random wait (s) before a kill, counted from the moment the '
                        'run holds its folder (default: one epoch of the reference run)')
    opts = p.parse_args()
    rng = random.Random(opts.seed)
    root = Path(tempfile.mkdtemp(prefix='soak_'))
    env = dict(os.environ, SR_EXPERIMENT_ROOT=str(root), OMP_NUM_THREADS='2')
    data = root / 'data'        # one 48x48 test image: evaluation after each epoch is quick
    (data / 'benchmark' / 'Tiny' / 'HR').mkdir(parents=True)
    from PIL import Image
    Image.open(REPO / 'dataset' / 'benchmark' / 'Set5' / 'HR' / 'butterfly.png').convert(
        'RGB').crop((60, 60, 108, 108)).save(data / 'benchmark' / 'Tiny' / 'HR' / 'crop.png')
    log = open(root / 'soak.log', 'w')
    t0 = time.time()
    ref = subprocess.run([sys.executable, str(MAIN)] + run_args(data, 'ref', opts.epochs), env=env,
                         stdout=log, stderr=subprocess.STDOUT)
    assert ref.returncode == 0, f'reference run failed, see {root / "soak.log"}'
    ref_time = time.time() - t0
    print(f'reference run: {ref_time:.0f} s', flush=True)
    max_delay = opts.max_delay or ref_time / opts.epochs

    folder = root / 'soak'
    kills, failures, during_write = 0, [], 0
    argv = run_args(data, 'soak', opts.epochs)
    while kills < opts.kills:
        proc = start(argv, env, log)
        at_write = kills % 3 == 2
        delay = rng.uniform(0, max_delay)
        deadline = time.time() + delay
        while proc.poll() is None:
            # The delay counts from the moment this process holds the folder (after torch's
            # import and data setup, and after it removed any .tmp left by the last kill),
            # and the first kill waits for a checkpoint, so that every kill can be followed
            # by --load.
            if not (folder / 'checkpoint.pt').exists() or not _holds_lock(folder, proc.pid):
                deadline = time.time() + delay
            elif at_write:
                if list(folder.glob('.checkpoint.pt.*.tmp')):
                    break
            elif time.time() >= deadline:
                break
            time.sleep(0.002)
        if proc.poll() is not None:                 # ended on its own
            if proc.returncode != 0:
                failures.append((kills, proc.returncode))
            print(f'run ended on its own with status {proc.returncode} after {kills} kills')
            break
        proc.kill()
        proc.wait()
        kills += 1
        during_write += at_write
        tmp_now = len(list(folder.rglob('*.tmp')))
        epoch = load(folder / 'checkpoint.pt')['epoch']
        print(f'kill {kills}: {"during a checkpoint write" if at_write else "random moment"}, '
              f'checkpoint epoch {epoch}, {tmp_now} .tmp file(s) left by the kill', flush=True)
        argv = run_args(data, 'x', opts.epochs, '--load', 'soak')
    final = subprocess.run([sys.executable, str(MAIN)] + run_args(data, 'x', opts.epochs,
                                                                   '--load', 'soak'),
                           env=env, stdout=log, stderr=subprocess.STDOUT)
    if final.returncode != 0:
        failures.append(('final', final.returncode))
    a, b = load(folder / 'model' / 'model_latest.pt'), load(root / 'ref' / 'model' /
                                                            'model_latest.pt')
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    equal = all(torch.equal(a[k], b[k]) for k in a)
    tmp = [str(p) for p in root.rglob('*.tmp')]
    lock = (folder / 'run.lock').exists()
    print(f'{kills} kills ({during_write} during checkpoint writes); final weights vs uninterrupted: max |diff| {diff:.3g}, '
          f'torch.equal {equal}; .tmp files left: {len(tmp)}; lock left: {lock}; failed '
          f'resumes: {len(failures)} {failures or ""}; {time.time() - t0:.0f} s; log in '
          f'{root / "soak.log"}')
    return 0 if equal and not tmp and not failures and not lock else 1


if __name__ == '__main__':
    sys.exit(main())
