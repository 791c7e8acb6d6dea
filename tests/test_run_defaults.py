"""A run named with --load lends its arguments (issue 26, item 4), and the smaller
mistakes of item 7: a mistyped --load or --model named before missing data, "did you
mean" for a mistyped flag, the Demo output path, plots of a term dropped on resume."""
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from cli import assert_user_error, run_main
from conftest import TINY


def _first(tiny_data, save, *extra):
    # Non-default sizes everywhere: retyping none of them must still rebuild this network.
    return [*TINY, '--n_feats', '12', '--scale', '2', '--data_train', 'Sample', '--data_test',
            'Tiny', '--dir_data', tiny_data, '--patch_size', '16', '--batch_size', '2',
            '--test_every', '2', '--epochs', '1', '--lr', '1e-3', '--save', save, *extra]


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_data):
    exp = tmp_path_factory.mktemp('exp')
    proc = run_main(_first(tiny_data, 'run', '--loss', '1*L1+0.5*MSE'), exp_root=exp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return exp


@pytest.mark.slow
def test_test_only_of_a_run_needs_no_size_flags(trained):
    proc = run_main(['--test_only', '--load', 'run'], exp_root=trained)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = trained / 'run' / 'model' / 'model_best.pt'
    assert f'Evaluating {best} with the arguments of run run' in proc.stdout
    evaluated = json.loads((trained / 'run_test' / 'metrics.json').read_text())
    during = json.loads((trained / 'run' / 'metrics.json').read_text())
    assert evaluated['Tiny']['x2'] == during['Tiny']['x2']       # the same weights, same set
    assert 'Evaluating' not in (trained / 'run' / 'log.txt').read_text()   # run left alone
    # A flag given now wins: another scale set, another metric.
    other = run_main(['--test_only', '--load', 'run', '--metrics', 'psnr', '--save', 'p'],
                     exp_root=trained)
    assert other.returncode == 0, other.stderr[-3000:]
    assert "changed on the command line: --metrics 'psnr+ssim' -> 'psnr'" in other.stdout
    assert list(json.loads((trained / 'p' / 'metrics.json').read_text())['Tiny']['x2']) == ['psnr']
    same = run_main(['--test_only', '--load', 'run', '--save', 'run'], exp_root=trained)
    assert_user_error(same, 'another --save name than run')


@pytest.mark.slow
def test_resume_takes_the_saved_arguments_and_lists_overrides(trained, tmp_path):
    import shutil
    exp = tmp_path / 'exp'
    shutil.copytree(trained / 'run', exp / 'run')
    proc = run_main(['--load', 'run', '--epochs', '2', '--loss', '1*L1'], exp_root=exp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ("Resuming run run with its saved arguments; changed on the command line: "
            "--epochs 1 -> 2, --loss '1*L1+0.5*MSE' -> '1*L1'") in proc.stdout
    assert 'Resumed from epoch 1' in proc.stdout
    ckpt = torch.load(exp / 'run' / 'checkpoint.pt', weights_only=True)
    assert ckpt['epoch'] == 2 and ckpt['args']['n_feats'] == 12 and ckpt['args']['loss'] == '1*L1'
    assert ckpt['args']['raw_args']['epochs'] == 2
    # item 7: the dropped term's plot (and the total's) are set aside, not left as current.
    assert (exp / 'run' / 'loss_L1.png').is_file()
    assert not (exp / 'run' / 'loss_MSE.png').exists()
    assert (exp / 'run' / 'previous_plots' / 'loss_MSE.png').is_file()
    assert 'Moved the plots of terms no longer in --loss' in (exp / 'run' / 'log.txt').read_text()
    # The resumed run's own values are what a second --load inherits (--epochs 2 now).
    again = run_main(['--load', 'run'], exp_root=exp)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'Resuming run run with its saved arguments; none changed' in again.stdout
    assert 'nothing to train: raise --epochs' in again.stdout


def test_mistyped_load_is_named_before_missing_data(trained, tmp_path):
    # No DIV2K in --dir_data: before, its absence was reported and the typo hidden.
    proc = run_main(['--load', 'rnu', '--dir_data', tmp_path], exp_root=trained)
    assert_user_error(proc, '--load rnu', 'does not exist', 'did you mean --load run?')
    nothing = run_main(['--load', 'x', '--dir_data', tmp_path], exp_root=tmp_path / 'empty')
    assert_user_error(nothing, '--load x', 'no run in')


def test_mistyped_model_is_named_before_missing_data(tmp_path):
    proc = run_main(['--model', 'EDSRR', '--dir_data', tmp_path], exp_root=tmp_path / 'exp')
    assert_user_error(proc, "unknown --model 'EDSRR'", 'edsr')


def test_mistyped_flag_gets_did_you_mean(tmp_path):
    proc = run_main(['--n_resblcoks', '4'], exp_root=tmp_path)
    assert_user_error(proc, 'unrecognized arguments: --n_resblcoks', 'did you mean --n_resblocks?')


def test_demo_run_prints_where_the_images_went(tmp_path):
    demo = tmp_path / 'demo'
    demo.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(demo / 'x.png')
    proc = run_main(['--model', 'Bicubic', '--scale', '2', '--data_test', 'Demo', '--dir_demo',
                     demo, '--test_only', '--save_results', '--save', 'demo', '--n_threads', '0'],
                    exp_root=tmp_path / 'exp')
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / 'exp' / 'demo' / 'results-Demo'
    assert re.search(rf'no ground truth: wrote SR images to {re.escape(str(out))}$', proc.stdout,
                     re.M), proc.stdout
    assert (out / 'x_x2_SR.png').is_file()
