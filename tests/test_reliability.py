"""Nothing lost, nothing silent: fine-tuning across scales, no silent overwrite, run locks,
write faults (full disk, read-only folder), divergence, unreadable images, parse-time checks.

Every test runs the real CLI in a subprocess on tiny settings.  A full disk is simulated
with a ``sitecustomize`` (put on PYTHONPATH by the test only) that makes the fsync of one
file's temporary copy fail with ENOSPC, as a full disk or quota does.
"""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from cli import REPO, assert_user_error, run_main
from conftest import TINY, make_args

FAULT_HOOK = '''
import errno, os
_spec = os.environ.get('SR_TEST_FAULT')   # NAME:N:ERRNO -- the N-th write of NAME fails
if _spec:
    _name, _n, _code = _spec.split(':')
    _count = [0]
    _fsync = os.fsync

    def fsync(fd):
        try:
            path = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            path = ''
        if os.path.basename(path).startswith('.' + _name + '.'):
            _count[0] += 1
            if _count[0] == int(_n):
                code = getattr(errno, _code)
                raise OSError(code, os.strerror(code))
        return _fsync(fd)

    os.fsync = fsync
'''


def train_args(data_dir, save, epochs=1, *extra):
    return TINY + ['--scale', '2', '--data_train', 'Sample', '--data_test', 'Tiny',
            '--dir_data', data_dir,
            '--patch_size', '16', '--batch_size', '2', '--test_every', '2',
            '--epochs', epochs, '--lr', '1e-3', '--loss', '1*L1', '--save', save, *extra]


@pytest.fixture(scope='module')
def reference(tmp_path_factory, tiny_data):
    """model_latest.pt of an uninterrupted 3-epoch run of ``train_args``."""
    exp = tmp_path_factory.mktemp('ref')
    proc = run_main(train_args(tiny_data, 'ref', 3), exp_root=exp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return load(exp / 'ref' / 'model' / 'model_latest.pt')


def same_weights(a, b):
    return a.keys() == b.keys() and all(
        torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def no_tmp_files(folder):
    return [p for p in folder.rglob('*.tmp')] == []


# ----------------------------------------------------------------------------- 1. scales

@pytest.mark.slow
def test_fine_tune_from_another_scale_skips_only_the_upsampler(tmp_path, tiny_data):
    # x2 weights as a trained run leaves them (random values; tests/test_demo_recipes.py runs
    # demo.sh's x3 and x4 recipes from an x2 training run).
    exp = tmp_path / 'exp'
    import model as model_pkg
    torch.manual_seed(0)
    x2 = tmp_path / 'model_x2.pt'
    torch.save(model_pkg.make_net(make_args(*TINY, '--scale', '2')).state_dict(), x2)
    for scale, named in (('3', 'tail.0.0.weight'),):
        # --lr 0: the weights saved after the epoch are the loaded ones.
        proc = run_main(train_args(tiny_data, f'x{scale}', 1, '--scale', scale, '--lr', '0',
                                   '--pre_train', x2), exp_root=exp)
        assert proc.returncode == 0, proc.stderr[-2000:]
        notes = [ln for ln in (exp / f'x{scale}' / 'log.txt').read_text().splitlines()
                 if 'upsampler weights' in ln]
        assert len(notes) == 1 and named in notes[0], notes
        assert 'head.0.weight' not in notes[0] and 'tail.1' not in notes[0]
        got, given = load(exp / f'x{scale}' / 'model' / 'model_latest.pt'), load(x2)
        for k, v in got.items():
            if not k.startswith('tail.0.'):
                assert torch.equal(v, given[k]), k
    # Everything outside the upsampler stays strict.
    assert_user_error(run_main(train_args(tiny_data, 'wide', 1, '--n_feats', '16',
                                          '--scale', '3', '--pre_train', x2), exp_root=exp),
                      'head.0.weight', 'wrong shapes')
    # Evaluating x2 weights at x3 would score a random upsampler: strict.
    assert_user_error(run_main(TINY + ['--scale', '3', '--data_test', 'Tiny', '--dir_data',
                                       tiny_data, '--pre_train', x2, '--test_only', '--save',
                                       't'], exp_root=exp),
                      'tail.0.0.weight', 'wrong shapes')


# ----------------------------------------------------------------------------- 2. overwrite

def bicubic_eval(data_dir, save, *extra):
    return ['--model', 'Bicubic', '--scale', '2', '--data_test', 'Tiny', '--dir_data', data_dir,
            '--test_only', '--n_threads', '0', '--save', save, *extra]


@pytest.mark.slow
def test_test_only_refuses_a_folder_holding_an_evaluation(tmp_path, tiny_data):
    base = bicubic_eval(tiny_data, 'ev')
    assert run_main(base, exp_root=tmp_path).returncode == 0
    first = (tmp_path / 'ev' / 'metrics.json').read_text()
    # Nothing is chosen as "best" in an evaluation, so the log does not say so.
    assert 'Best model is chosen' not in (tmp_path / 'ev' / 'log.txt').read_text()
    assert_user_error(run_main(base + ['--scale', '3'], exp_root=tmp_path),
                      'already holds an evaluation', '--save', '--reset')
    assert (tmp_path / 'ev' / 'metrics.json').read_text() == first
    proc = run_main(base + ['--scale', '3', '--reset'], exp_root=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'x3' in json.loads((tmp_path / 'ev' / 'metrics.json').read_text())['Tiny']
    archived = [p for p in tmp_path.iterdir() if p.name.startswith('ev_archived_')]
    assert len(archived) == 1 and (archived[0] / 'metrics.json').read_text() == first


def test_demo_inputs_differing_in_extension_keep_both_results(tmp_path):
    demo = tmp_path / 'demo'
    demo.mkdir()
    Image.fromarray(np.full((8, 8, 3), 40, np.uint8)).save(demo / 'img.png')
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(demo / 'img.bmp')
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(demo / 'other.png')
    proc = run_main(['--model', 'Bicubic', '--scale', '2', '--data_test', 'Demo', '--dir_demo',
                     demo, '--test_only', '--save_results', '--save', 'd', '--n_threads', '0'],
                    exp_root=tmp_path / 'exp')
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / 'exp' / 'd' / 'results-Demo'
    assert sorted(p.name for p in out.iterdir()) == [
        'img.bmp_x2_SR.png', 'img.png_x2_SR.png', 'other_x2_SR.png']
    assert np.asarray(Image.open(out / 'img.png_x2_SR.png')).mean() == pytest.approx(40, abs=1)
    assert np.asarray(Image.open(out / 'img.bmp_x2_SR.png')).mean() == pytest.approx(200, abs=1)


def _dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, tiny_data):
    folder = tmp_path / 'locked'
    folder.mkdir()
    lock = folder / 'run.lock'
    dead = _dead_pid()
    lock.write_text(json.dumps({'pid': dead, 'host': socket.gethostname()}))
    proc = run_main(bicubic_eval(tiny_data, 'locked'), exp_root=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'Took over the lock of a process that no longer runs (pid {dead}' in \
        (folder / 'log.txt').read_text()
    assert not lock.exists()


@pytest.mark.slow
def test_second_live_run_on_a_folder_is_one_line(tmp_path, tiny_data):
    """A real concurrent run: the second start is refused while the first trains."""
    exp = tmp_path / 'exp'
    env = dict(os.environ, SR_EXPERIMENT_ROOT=str(exp), OMP_NUM_THREADS='1')
    first = subprocess.Popen([sys.executable, str(REPO / 'src' / 'main.py')]
                             + [str(a) for a in train_args(tiny_data, 'busy', 50)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = exp / 'busy' / 'run.lock'
        for _ in range(1200):
            if lock.exists() or first.poll() is not None:
                break
            time.sleep(0.05)
        assert lock.exists(), 'the first run never took the lock'
        assert_user_error(run_main(train_args(tiny_data, 'busy', 1), exp_root=exp),
                          'in use', str(first.pid), 'run.lock')
        # --reset must not archive a folder in use either.
        assert_user_error(run_main(train_args(tiny_data, 'busy', 1, '--reset'), exp_root=exp),
                          'in use')
        assert not [p for p in exp.iterdir() if 'archived' in p.name]
    finally:
        first.kill()
        first.wait()


# ----------------------------------------------------------------------------- 3. faults

@pytest.fixture
def fault_env(tmp_path, monkeypatch):
    """Sets PYTHONPATH so that subprocesses load the fault hook; returns a setter."""
    hook = tmp_path / 'hook'
    hook.mkdir()
    (hook / 'sitecustomize.py').write_text(FAULT_HOOK)
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join(
        [str(hook)] + [p for p in [os.environ.get('PYTHONPATH')] if p]))

    def set_fault(spec):
        monkeypatch.setenv('SR_TEST_FAULT', spec)
    return set_fault


@pytest.mark.slow
def test_disk_full_writing_weights_is_one_line_and_loses_nothing(tmp_path, tiny_data,
                                                                   fault_env, reference):
    exp = tmp_path / 'exp'
    # The 2nd model_latest.pt write (epoch 2) fails; metrics.json of epoch 2 is already out.
    fault_env('model_latest.pt:2:ENOSPC')
    proc = run_main(train_args(tiny_data, 'full', 3), exp_root=exp)
    line = assert_user_error(proc, 'disk full', 'model_latest.pt', 'free at least',
                             'metrics.json', 'newer than checkpoint.pt (epoch 1)', '--load full')
    folder = exp / 'full'
    assert no_tmp_files(folder)
    assert line.split('error: ', 1)[1] in (folder / 'log.txt').read_text()
    ckpt = load(folder / 'checkpoint.pt')
    assert ckpt['epoch'] == 1
    latest = load(folder / 'model' / 'model_latest.pt')
    assert all(torch.equal(latest[k], ckpt['model'][k]) for k in latest)  # same epoch
    assert not (folder / 'run.lock').exists()
    # Space freed: the run continues from epoch 1 and ends like an uninterrupted one.
    os.environ.pop('SR_TEST_FAULT', None)
    fault_env('none:1:ENOSPC')
    done = run_main(train_args(tiny_data, 'x', 3, '--load', 'full'), exp_root=exp)
    assert done.returncode == 0, done.stderr[-2000:]
    assert same_weights(load(folder / 'model' / 'model_latest.pt'), reference)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['checkpoint.pt', 'metrics.json'])
def test_disk_full_writing_checkpoint_or_metrics(tmp_path, tiny_data, fault_env, name):
    exp = tmp_path / 'exp'
    fault_env(f'{name}:1:ENOSPC')
    proc = run_main(train_args(tiny_data, 'full', 1), exp_root=exp)
    assert_user_error(proc, 'disk full', name, 'no epoch was checkpointed yet')
    assert no_tmp_files(exp / 'full')
    assert not (exp / 'full' / 'checkpoint.pt').exists()
    # metrics.json comes before the checkpoint: it is written or absent, never partial.
    if name == 'metrics.json':
        assert not (exp / 'full' / 'metrics.json').exists()
    else:
        json.loads((exp / 'full' / 'metrics.json').read_text())


def test_disk_full_in_a_test_only_run(tmp_path, tiny_data, fault_env):
    fault_env('metrics.csv:1:ENOSPC')
    proc = run_main(bicubic_eval(tiny_data, 'ev'), exp_root=tmp_path)
    assert_user_error(proc, 'disk full', 'metrics.csv', 'rerun the evaluation')
    assert no_tmp_files(tmp_path / 'ev')


def test_read_only_run_folder_is_one_line(tmp_path, tiny_data):
    root = tmp_path / 'exp'
    (root / 'ev').mkdir(parents=True)
    mounted = False
    if os.geteuid() == 0:   # root ignores file modes: a read-only bind mount instead
        mounted = all(subprocess.run(cmd, capture_output=True).returncode == 0 for cmd in (
            ['mount', '--bind', str(root), str(root)],
            ['mount', '-o', 'remount,bind,ro', str(root)]))
        if not mounted:
            subprocess.run(['umount', str(root)], capture_output=True)
            pytest.skip('running as root without mount: cannot make a read-only folder')
    else:
        (root / 'ev').chmod(0o555)
    try:
        proc = run_main(bicubic_eval(tiny_data, 'ev'), exp_root=root)
        assert_user_error(proc, str(root / 'ev'), 'writable')
    finally:
        if mounted:
            subprocess.run(['umount', str(root)], check=True)
        else:
            (root / 'ev').chmod(0o755)


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_data, reference):
    """kill -9 after the first checkpoint; a write killed midway is simulated by a stray
    temporary file.  --load takes over the dead run's lock, removes the temporary files
    and ends with the uninterrupted run's weights."""
    exp = tmp_path / 'exp'
    env = dict(os.environ, SR_EXPERIMENT_ROOT=str(exp), OMP_NUM_THREADS='2')
    run = subprocess.Popen([sys.executable, str(REPO / 'src' / 'main.py')]
                           + [str(a) for a in train_args(tiny_data, 'run', 3)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = exp / 'run'
    try:
        while not (folder / 'checkpoint.pt').exists() and run.poll() is None:
            time.sleep(0.02)
    finally:
        run.kill()          # SIGKILL
        run.wait()
    assert (folder / 'run.lock').exists()
    left = [folder / '.checkpoint.pt.k2j3h4.tmp', folder / 'model' / '.model_latest.pt.x8y9.tmp']
    for p in left:
        p.write_bytes(b'half a file')
    proc = run_main(train_args(tiny_data, 'x', 3, '--load', 'run'), exp_root=exp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert no_tmp_files(folder) and not (folder / 'run.lock').exists()
    log = (folder / 'log.txt').read_text()
    assert 'Took over the lock of a process that no longer runs' in log
    assert 'Removed 2 temporary file(s) left by an interrupted write' in log
    assert same_weights(load(folder / 'model' / 'model_latest.pt'), reference)


# ----------------------------------------------------------------------------- 4. NaN

def _strict_json(path):
    def refuse(name):
        raise AssertionError(f'{name} in {path}')
    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.slow
def test_diverged_run_stops_without_a_best_model_from_nan(tmp_path, tiny_data):
    # lr 1e30: the first step blows the weights up; every later loss is inf or NaN.
    proc = run_main(train_args(tiny_data, 'nan', 3, '--lr', '1e30'), exp_root=tmp_path)
    assert_user_error(proc, 'epoch 2: all 2 batches were skipped', '--load nan', '--lr')
    folder = tmp_path / 'nan'
    ckpt = load(folder / 'checkpoint.pt')
    assert ckpt['epoch'] == 1 and ckpt['best'] is None
    assert not (folder / 'model' / 'model_best.pt').exists()
    assert _strict_json(folder / 'metrics.json')['Tiny']['x2']['psnr'] is None
    assert 'epoch 2: all 2 batches were skipped' in (folder / 'log.txt').read_text()


def test_metrics_json_is_strict_json_when_scores_are_nan(tmp_path, tiny_data):
    net_args = TINY + ['--scale', '2']
    import model as model_pkg
    net = model_pkg.make_net(make_args(*net_args))
    weights = {k: torch.full_like(v, float('nan')) for k, v in net.state_dict().items()}
    torch.save(weights, tmp_path / 'nan.pt')
    proc = run_main(net_args + ['--data_test', 'Tiny', '--dir_data', tiny_data, '--test_only',
                                '--pre_train', tmp_path / 'nan.pt', '--save', 'nan',
                                '--n_threads', '0'], exp_root=tmp_path / 'exp')
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = _strict_json(tmp_path / 'exp' / 'nan' / 'metrics.json')
    assert summary['Tiny']['x2']['psnr'] is None


# ----------------------------------------------------------------------------- 5. images

def test_test_only_without_weights_is_refused(tmp_path):
    proc = run_main(['--model', 'EDSR', '--scale', '2', '--n_resblocks', '1', '--n_feats', '8',
                     '--test_only', '--n_threads', '0', '--save', 'r'], exp_root=tmp_path)
    assert_user_error(proc, '--test_only', '--pre_train')
    assert not (tmp_path / 'r').exists()


def test_unreadable_demo_image_is_skipped_and_listed(tmp_path):
    demo = tmp_path / 'demo'
    demo.mkdir()
    Image.fromarray(np.full((8, 8, 3), 40, np.uint8)).save(demo / 'good.png')
    (demo / 'bad.png').write_bytes(b'not a png at all')
    proc = run_main(['--model', 'Bicubic', '--scale', '2', '--data_test', 'Demo', '--dir_demo',
                     demo, '--test_only', '--save_results', '--save', 'd', '--n_threads', '1'],
                    exp_root=tmp_path / 'exp')
    line = assert_user_error(proc, '1 image(s) could not be read', 'bad.png')
    folder = tmp_path / 'exp' / 'd'
    assert (folder / 'results-Demo' / 'good_x2_SR.png').is_file()
    log = (folder / 'log.txt').read_text()
    assert line.split('error: ', 1)[1] in log and 'skipped: ' in log


def test_unreadable_benchmark_image_stops_and_is_logged(tmp_path):
    hr = tmp_path / 'data' / 'benchmark' / 'Broken' / 'HR'
    hr.mkdir(parents=True)
    Image.fromarray(np.full((16, 16, 3), 40, np.uint8)).save(hr / 'a_good.png')
    (hr / 'bad.png').write_bytes(b'not a png at all')
    proc = run_main(['--model', 'Bicubic', '--scale', '2', '--dir_data', tmp_path / 'data',
                     '--data_test', 'Broken', '--test_only', '--ext', 'img', '--save', 'b',
                     '--n_threads', '0'], exp_root=tmp_path / 'exp')
    assert_user_error(proc, 'bad.png')
    folder = tmp_path / 'exp' / 'b'
    assert 'bad.png' in (folder / 'log.txt').read_text()
    assert not (folder / 'metrics.json').exists()     # no means over part of the set


# ----------------------------------------------------------------------------- 6. parse time

def test_ssl_search_larger_than_the_patch_is_refused_before_any_folder(tmp_path, tiny_data):
    proc = run_main(train_args(tiny_data, 'ssl', 1, '--loss', '1*L1+1*SSL', '--patch_size',
                               '16', '--ssl_search', '33'), exp_root=tmp_path)
    assert_user_error(proc, '--ssl_search 33', '--patch_size 16', '--ssl_search 31')
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_negative_loss_weight_gets_the_loss_parser_message(tmp_path):
    proc = run_main(['--loss', '-1*L1', '--save', 'neg'], exp_root=tmp_path)
    line = assert_user_error(proc, "weight '-1'", 'must be > 0')
    assert 'expected one argument' not in line


def test_pickled_pre_train_gets_our_message_only(tmp_path):
    import shutil
    torch.save({'head.0.weight': torch.zeros(1), 'evil': shutil.rmtree}, tmp_path / 'p.pt')
    proc = run_main(['--model', 'EDSR', '--scale', '2', '--pre_train', tmp_path / 'p.pt',
                     '--test_only', '--save', 'p', '--n_threads', '0'], exp_root=tmp_path)
    line = assert_user_error(proc, 'p.pt', 'pickled Python objects', 'state_dict')
    # Not torch's text, which invites loading it anyway (weights_only=False).
    assert 'can still be loaded' not in line and 'weights_only' not in line
    assert not (tmp_path / 'p').exists()


# ----------------------------------------------------------------------------- 7. messages

def test_div2k_not_found_names_the_real_scale(tmp_path):
    proc = run_main(['--scale', '3', '--data_train', 'DIV2K', '--dir_data', tmp_path,
                     '--save', 'd'], exp_root=tmp_path / 'exp')
    line = assert_user_error(proc, 'DIV2K not found', 'X3/0001x3.png')
    assert 'X2' not in line


def test_op_build_message_and_readme_agree():
    # The measured figure lives in docs/benchmarks.md (README links to it).
    from loss.ssl_cuda import _build
    readme = ' '.join((REPO / 'docs' / 'benchmarks.md').read_text().split())
    assert _build.BUILD_TIME in readme
    assert '{BUILD_TIME}' in (REPO / 'src' / 'loss' / 'ssl_cuda' / '_build.py').read_text()
