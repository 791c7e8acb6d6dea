"""Training runs through the real CLI: checkpoints, exact resume, reset, skip, AMP, DDP."""
import os
import shutil
import sys

import numpy as np
import pytest
import torch

from cli import assert_user_error, run_main
from conftest import TINY


def train_args(data_dir, save, epochs, *extra):
    # SSL's windows fit the 32-pixel patch; given only when the loss (extra's --loss wins)
    # has an SSL term, since its flags are refused otherwise.
    loss = '1*L1+0.1*SSL+1*SPL'
    for i, token in enumerate(extra[:-1]):
        if token == '--loss':
            loss = extra[i + 1]
    ssl = ['--ssl_search', '11', '--ssl_window', '5'] if 'SSL' in loss.upper() else []
    return [*TINY, '--scale', '2', '--data_train', 'Sample', '--data_test', 'Tiny',
            '--dir_data', data_dir,
            '--patch_size', '32', '--batch_size', '4', '--test_every', '3',
            '--epochs', epochs, '--decay', '1', '--gamma', '0.5', '--lr', '1e-3',
            '--loss', '1*L1+0.1*SSL+1*SPL', *ssl, '--save', save, *extra]


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def one_epoch(tmp_path_factory, tiny_data):
    """One epoch of ``train_args`` (L1+SSL+SPL), run once for the module: a run folder that
    tests copy (``_copy_run``) and resume, archive or damage."""
    exp = tmp_path_factory.mktemp('one_epoch')
    proc = run_main(train_args(tiny_data, 'part', 1), exp_root=exp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return exp / 'part'


def _copy_run(run, exp, name):
    exp.mkdir(parents=True, exist_ok=True)
    shutil.copytree(run, exp / name)


@pytest.mark.slow
def test_resume_is_exact(tmp_path, tiny_data, one_epoch):
    exp = tmp_path / 'exp'
    full = run_main(train_args(tiny_data, 'full', 3), exp_root=exp)
    assert full.returncode == 0, full.stderr[-3000:]
    _copy_run(one_epoch, exp, 'part')
    resumed = run_main(train_args(tiny_data, 'ignored', 3, '--load', 'part'), exp_root=exp)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'Resumed from epoch 1' in resumed.stdout

    a = load(exp / 'full' / 'model' / 'model_latest.pt')
    b = load(exp / 'part' / 'model' / 'model_latest.pt')
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6), k

    ca, cb = load(exp / 'full' / 'checkpoint.pt'), load(exp / 'part' / 'checkpoint.pt')
    assert ca['epoch'] == cb['epoch'] == 3
    assert ca['iteration'] == cb['iteration'] == 9
    assert ca['age'] == cb['age'] == 3.0
    # lr 1e-3 decays by 0.5 after every epoch (--decay 1 is a single milestone at epoch 1)
    assert cb['scheduler']['last_epoch'] == 3
    assert cb['optimizer']['param_groups'][0]['lr'] == pytest.approx(5e-4)
    assert ca['loss_log'] == cb['loss_log'] or _close_logs(ca['loss_log'], cb['loss_log'])
    assert (exp / 'part' / 'test_Tiny_psnr.png').is_file()
    assert (exp / 'part' / 'test_Tiny_ssim.pdf').is_file()
    assert list((exp / 'part').glob('loss_*.png'))

    done = run_main(train_args(tiny_data, 'ignored', 3, '--load', 'part', '--lr', '5e-3'),
                    exp_root=exp)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'nothing to train: raise --epochs' in done.stdout
    assert 'Not applied: the optimizer and the lr schedule continue from the checkpoint (--lr)' \
        in done.stdout


def _close_logs(a, b):
    return np.allclose(np.asarray(_flatten(a)), np.asarray(_flatten(b)), rtol=1e-5)


def _flatten(obj):
    if isinstance(obj, dict):
        return [x for k in sorted(obj) for x in _flatten(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [x for v in obj for x in _flatten(v)]
    return [float(obj)] if isinstance(obj, (int, float)) else []


@pytest.mark.slow
def test_existing_run_needs_load_or_reset(tmp_path, tiny_data, one_epoch):
    exp = tmp_path / 'exp'
    _copy_run(one_epoch, exp, 'run')
    again = run_main(train_args(tiny_data, 'run', 1), exp_root=exp)
    assert_user_error(again, '--load run', '--reset')
    reset = run_main(train_args(tiny_data, 'run', 1, '--reset'), exp_root=exp)
    assert reset.returncode == 0, reset.stderr[-3000:]
    archived = [p for p in exp.iterdir() if p.name.startswith('run_archived_')]
    assert len(archived) == 1 and (archived[0] / 'checkpoint.pt').is_file()
    # An evaluation would overwrite the run's metrics files.
    weights = exp / 'run' / 'model' / 'model_latest.pt'
    assert_user_error(run_main(train_args(tiny_data, 'run', 1, '--test_only', '--pre_train',
                                          weights), exp_root=exp),
                      'training run', '--save')
    # Atomic writes give the files an ordinary new file's mode, not mkstemp's 0600.
    umask = os.umask(0)
    os.umask(umask)
    for name in ('checkpoint.pt', 'metrics.json', 'model/model_latest.pt'):
        assert (exp / 'run' / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


@pytest.mark.slow
def test_bad_checkpoints_are_refused(tmp_path, tiny_data, one_epoch):
    exp = tmp_path / 'exp'
    _copy_run(one_epoch, exp, 'run')
    ckpt = exp / 'run' / 'checkpoint.pt'
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert_user_error(run_main(train_args(tiny_data, 'x', 2, '--load', 'run'), exp_root=exp),
                      'checkpoint.pt', 'truncated')
    torch.save({'model': {}, 'evil': shutil.rmtree}, ckpt)
    assert_user_error(run_main(train_args(tiny_data, 'x', 2, '--load', 'run'), exp_root=exp),
                      'pickled')


@pytest.mark.slow
def test_skip_threshold_skips_and_an_all_skipped_epoch_stops(tmp_path, tiny_data):
    exp = tmp_path / 'exp'
    proc = run_main(train_args(tiny_data, 'skip', 2, '--skip_threshold', '1e-6'), exp_root=exp)
    assert_user_error(proc, 'epoch 2: all 3 batches were skipped', '--load skip')
    log = (exp / 'skip' / 'log.txt').read_text()
    assert log.count('Skip batch') == 3   # every batch of epoch 2
    ckpt = load(exp / 'skip' / 'checkpoint.pt')
    assert ckpt['epoch'] == 1 and ckpt['skipped'] == 0   # the diverged epoch is not saved
    latest = load(exp / 'skip' / 'model' / 'model_latest.pt')
    assert all(torch.equal(latest[k], ckpt['model'][k]) for k in latest)


@pytest.mark.slow
def test_ema_weights_are_the_best_model(tmp_path, tiny_data):
    proc = run_main(train_args(tiny_data, 'ema', 1, '--loss', '1*L1', '--ema_decay', '0.5'),
                    exp_root=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = tmp_path / 'ema' / 'model'
    best, ema, latest = (load(model / f'{n}.pt') for n in ('model_best', 'model_ema',
                                                           'model_latest'))
    assert all(torch.equal(best[k], ema[k]) for k in best)   # what was evaluated is kept
    assert any(not torch.equal(best[k], latest[k]) for k in best)


@pytest.mark.slow
def test_amp_trains_on_cpu(tmp_path, tiny_data):
    proc = run_main(train_args(tiny_data, 'amp', 1, '--precision', 'amp'), exp_root=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '[Tiny x2]  PSNR:' in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason='torch.distributed missing')
def test_ddp_two_cpu_processes_match_one_process(tmp_path, tiny_data):
    exp = tmp_path / 'exp'
    launcher = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                '--master_port', '29533']
    # SSL averages over each rank's masked pixels, so only per-pixel means compare exactly.
    loss = ['--loss', '1*L1+1*SPL']
    ddp = run_main(train_args(tiny_data, 'ddp', 1, *loss), exp_root=exp, launcher=launcher)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_main(train_args(tiny_data, 'single', 1, *loss), exp_root=exp)
    assert single.returncode == 0, single.stderr[-3000:]
    a = load(exp / 'ddp' / 'model' / 'model_latest.pt')
    b = load(exp / 'single' / 'model' / 'model_latest.pt')
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), k
    assert (exp / 'ddp' / 'metrics.json').is_file()


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason='torch.distributed missing')
def test_ddp_multi_scale_model_with_skipped_batches(tmp_path, tiny_data):
    # MDSR leaves the other scales' branches unused in every batch; epoch 2 skips every
    # batch on both ranks alike, which stops the run (the diverged epoch is not saved).
    launcher = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                '--master_port', '29534']
    args = train_args(tiny_data, 'mdsr', 2, '--model', 'MDSR', '--scale', '2+3', '--patch_size',
                      '16', '--loss', '1*L1', '--skip_threshold', '1e-6')
    proc = run_main(args, exp_root=tmp_path, launcher=launcher)
    assert proc.returncode != 0
    assert 'epoch 2: all 3 batches were skipped' in proc.stderr
    assert (tmp_path / 'mdsr' / 'log.txt').read_text().count('Skip batch') == 3
    assert load(tmp_path / 'mdsr' / 'checkpoint.pt')['epoch'] == 1
