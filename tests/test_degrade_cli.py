"""degrade.py and --degradation through the real CLIs, in subprocesses."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import utility
from cli import REPO, assert_user_error, run_main
from conftest import tiny_benchmark

DEGRADE = REPO / 'src' / 'degrade.py'


def run_degrade(args, threads='1'):
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    return subprocess.run([sys.executable, str(DEGRADE)] + [str(a) for a in args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """benchmark/Tiny/HR with two crops of bundled images, one not a multiple of 4."""
    return tiny_benchmark(tmp_path_factory.mktemp('deg'),
                          [('butterfly.png', (40, 40, 136, 136), 'a.png'),
                           ('baby.png', (200, 180, 266, 243), 'b.png')])


def _made(tiny, preset):
    """Make Tiny's seed-0 test set of ``preset`` once (in-process; the CLI is tested above)."""
    out = tiny / 'benchmark' / 'Tiny' / f'LR_{preset}' / 'X4'
    if not (out / 'manifest.json').is_file():
        import degrade
        degrade.make_test_set(tiny, 'Tiny', 4, preset, 0, log=lambda *_: None)


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_degrade_is_byte_identical_and_seeded(tiny, tmp_path):
    base = ['--data_test', 'Tiny', '--scale', '4', '--degradation', 'realesrgan']
    out = tiny / 'benchmark' / 'Tiny' / 'LR_realesrgan' / 'X4'
    first = run_degrade(['--dir_data', tiny, *base, '--seed', '0'])
    assert first.returncode == 0, first.stderr
    a = _files(out)
    assert set(a) == {'ax4.png', 'bx4.png', 'manifest.json'}
    preview = tmp_path / 'preview.png'
    again = run_degrade(['--dir_data', tiny, *base, '--seed', '0', '--preview', preview,
                         '--preview_count', '2'], threads='2')
    assert again.returncode == 0, again.stderr
    assert _files(out) == a                         # another run, another thread count
    assert Image.open(out / 'ax4.png').size == (24, 24)
    assert Image.open(out / 'bx4.png').size == (16, 15)     # HR 66x63 cropped to 64x60
    img = Image.open(preview)
    assert img.width > 4 * 96 and img.height > 96       # HR, bicubic and two degraded tiles
    manifest = json.loads(a['manifest.json'])
    assert manifest['seed'] == 0 and manifest['degradation'] == 'realesrgan'
    assert manifest['project_version'] and 'train_realesrgan_x4plus' in manifest['source']
    assert manifest['preset']['stage1']['jpeg_range'] == [30, 95]
    p = manifest['images']['a']['params']
    for key in ('kernel1', 'resize1', 'noise1', 'jpeg1', 'kernel2', 'resize2', 'noise2',
                'jpeg2', 'final'):
        assert key in p
    copy = tmp_path / 'copy'
    shutil.copytree(tiny / 'benchmark' / 'Tiny' / 'HR', copy / 'benchmark' / 'Tiny' / 'HR')
    other = run_degrade(['--dir_data', copy, *base, '--seed', '1'])
    assert other.returncode == 0, other.stderr
    b = _files(copy / 'benchmark' / 'Tiny' / 'LR_realesrgan' / 'X4')
    assert b['ax4.png'] != a['ax4.png'] and b['bx4.png'] != a['bx4.png']
    assert json.loads(b['manifest.json'])['images']['a']['params'] != p


def test_degrade_user_errors(tiny, capsys):
    proc = run_degrade(['--dir_data', tiny, '--data_test', 'Nope'])
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f'degrade.py: error: {tiny / "benchmark" / "Nope" / "HR"} does not exist; put the HR '
        f'images of Nope there or set --dir_data to the folder that holds benchmark/Nope/HR']
    import degrade

    def check(args, *needles):
        try:
            code = degrade.main([str(a) for a in args])
        except SystemExit as e:                     # argparse
            code = e.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        for n in needles:
            assert n in err[0], (n, err[0])

    check(['--dir_data', tiny, '--data_test', 'Tiny', '--degradation', 'nope'],
          "unknown --degradation 'nope'", 'realesrgan_ssl')
    check(['--dir_data', tiny, '--data_test', 'Tiny', '--degradation', 'bicubic'],
          'needs no generated test set')
    check(['--dir_data', tiny, '--data_test', 'Tiny', '--scale', 'x4'], '--scale')
    check(['--dir_data', tiny, '--data_test', 'Tiny', '--seed', '-1'], '--seed')
    check(['--dir_data', tiny, '--data_test', 'Tiny', '--preview', tiny / 'p.png',
           '--preview_image', 'zzz'], "--preview_image 'zzz' is not in")


@pytest.mark.slow
def test_main_evaluates_the_degraded_set_and_names_the_command(tiny, tmp_path, capsys):
    _made(tiny, 'realesrgan')
    exp = tmp_path / 'exp'
    common = ['--model', 'Bicubic', '--scale', '4', '--data_test', 'Tiny', '--dir_data', tiny,
              '--test_only', '--n_threads', '0']
    deg = run_main(common + ['--degradation', 'realesrgan', '--save', 'deg'], exp_root=exp)
    assert deg.returncode == 0, deg.stderr
    bic = run_main(common + ['--save', 'bic'], exp_root=exp)
    assert bic.returncode == 0, bic.stderr
    m_deg = json.loads((exp / 'deg' / 'metrics.json').read_text())['Tiny']['x4']['psnr']
    m_bic = json.loads((exp / 'bic' / 'metrics.json').read_text())['Tiny']['x4']['psnr']
    assert m_deg < m_bic - 1       # the real-world LR is harder than bicubic LR
    missing = run_main(common + ['--degradation', 'realesrgan_ssl', '--save', 'x'], exp_root=exp)
    assert_user_error(missing, 'LR_realesrgan_ssl/X4 does not exist',
                      f'python src/degrade.py --dir_data {tiny} --data_test Tiny --scale 4 '
                      '--degradation realesrgan_ssl --seed 0')
    import option
    with pytest.raises(SystemExit) as e:
        option.parse_args([str(a) for a in common] + ['--degradation', 'foo'])
    assert e.value.code == 2 and "unknown --degradation 'foo'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        option.parse_args([str(a) for a in common] + ['--degradation', 'realesrgan', '--scale',
                                                            '2+4'])
    assert 'works at one scale' in capsys.readouterr().err
    import data
    args = option.parse_args([str(a) for a in common] + ['--degradation', 'realesrgan',
                                                         '--data_test', 'Sample'])
    with pytest.raises(utility.UserError, match='test set Sample has no degraded LR images'):
        data.Data(args)


def _train(tiny, save, epochs, *extra):
    return ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--scale', '4',
            '--data_train', 'Sample', '--data_test', 'Tiny', '--dir_data', tiny,
            '--patch_size', '32', '--batch_size', '4', '--test_every', '3', '--epochs', epochs,
            '--lr', '1e-3', '--n_threads', '0', '--save', save, *extra]


def _resumed_equals_uninterrupted(tiny, exp, extra):
    """Train 2 epochs, and 1 epoch resumed with --load to 2; assert the weights are equal,
    bit for bit; return the resumed run's checkpoint."""
    full = run_main(_train(tiny, 'full', 2, *extra), exp_root=exp)
    assert full.returncode == 0, full.stderr[-3000:]
    part = run_main(_train(tiny, 'part', 1, *extra), exp_root=exp)
    assert part.returncode == 0, part.stderr[-3000:]
    resumed = run_main(_train(tiny, 'x', 2, *extra, '--load', 'part'), exp_root=exp)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(exp / 'full' / 'model' / 'model_latest.pt', weights_only=True)
    b = torch.load(exp / 'part' / 'model' / 'model_latest.pt', weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    d = torch.load(exp / 'part' / 'checkpoint.pt', weights_only=True)
    return d


@pytest.mark.slow
def test_degraded_training_resumes_exactly(tiny, tmp_path):
    """1 epoch + --load to 2 = 2 epochs, with the pool mixing (pool 8 = 2 batches of 4)."""
    _made(tiny, 'realesrgan')
    exp = tmp_path / 'exp'
    extra = ('--degradation', 'realesrgan', '--degradation_pool', '8', '--loss', '1*L1')
    d = _resumed_equals_uninterrupted(tiny, exp, extra)
    assert d['epoch'] == 2 and d['iteration'] == 6


@pytest.mark.slow
def test_realesrgan_ssl_training_with_ssl_smoke(tiny, tmp_path):
    _made(tiny, 'realesrgan_ssl')
    exp = tmp_path / 'exp'
    proc = run_main(_train(tiny, 'ssl', 1, '--degradation', 'realesrgan_ssl',
                           '--degradation_pool', '8', '--loss', '1*L1+1000*SSL',
                           '--ssl_search', '11', '--ssl_window', '5'), exp_root=exp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (exp / 'ssl' / 'log.txt').read_text()
    assert 'SSL:' in log and '[Tiny x4]  PSNR:' in log and 'nan' not in log.lower()
    ckpt = torch.load(exp / 'ssl' / 'checkpoint.pt', weights_only=True)
    assert ckpt['args']['degradation'] == 'realesrgan_ssl' and ckpt['iteration'] == 3


@pytest.mark.slow
@pytest.mark.parametrize('preset,variants', [('bsrgan', 1), ('mix', 3)])
def test_bsrgan_and_mix_sets_are_byte_identical_and_seeded(tiny, tmp_path, preset, variants):
    copies = []
    for i, threads in enumerate(('1', '2')):
        root = tmp_path / f'c{i}'
        shutil.copytree(tiny / 'benchmark' / 'Tiny' / 'HR', root / 'benchmark' / 'Tiny' / 'HR')
        extra = ['--variants', str(variants)] if preset == 'mix' else []
        proc = run_degrade(['--dir_data', root, '--data_test', 'Tiny', '--degradation', preset,
                            '--seed', '3', *extra], threads=threads)
        assert proc.returncode == 0, proc.stderr
        copies.append(_files(root / 'benchmark' / 'Tiny' / f'LR_{preset}' / 'X4'))
    a, b = copies
    manifest = json.loads(a.pop('manifest.json'))
    b.pop('manifest.json')
    assert a == b                                    # two runs, one and two threads
    if preset == 'bsrgan':
        assert set(a) == {'ax4.png', 'bx4.png'}
        assert 'degradation_bsrgan' in manifest['source']
        assert set(manifest['images']['a']['params']['order']) == set(range(7))
    else:
        assert set(a) == {f'{s}+{k}x4.png' for s in 'ab' for k in range(3)}
        assert manifest['variants'] == 3 and sum(manifest['groups'].values()) == 6
        entry = manifest['images']['b+2']
        assert entry['hr'] == 'b' and entry['variant'] == 2
        assert entry['group'] in ('realesrgan', 'bsrgan')
        assert entry['group'] == entry['params']['group']
        assert '--variants 3' in manifest['command']
        # versions differ from one another
        assert len({a[f'a+{k}x4.png'] for k in range(3)}) == 3
    assert Image.open(tmp_path / 'c0' / 'benchmark' / 'Tiny' / f'LR_{preset}' / 'X4' /
                      next(iter(a))).size in ((24, 24), (16, 15))
    other = tmp_path / 'c2'          # a fresh copy: the set of seed 3 is never replaced
    shutil.copytree(tiny / 'benchmark' / 'Tiny' / 'HR', other / 'benchmark' / 'Tiny' / 'HR')
    proc = run_degrade(['--dir_data', other, '--data_test', 'Tiny', '--degradation', preset,
                        '--seed', '4'] + (['--variants', str(variants)] if variants > 1 else []))
    assert proc.returncode == 0, proc.stderr
    c = _files(other / 'benchmark' / 'Tiny' / f'LR_{preset}' / 'X4')
    assert all(c[k] != a[k] for k in a)              # another seed, other images


def test_variants_needs_mix(tiny, capsys):
    import degrade
    with pytest.raises(SystemExit) as e:
        degrade.main(['--dir_data', str(tiny), '--data_test', 'Tiny', '--degradation',
                      'bsrgan', '--variants', '3'])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and '--variants 3 needs --degradation mix' in err[0]


@pytest.mark.slow
def test_mixed_set_evaluates_every_version_and_each_group(tiny, tmp_path):
    root = tmp_path / 'd'
    shutil.copytree(tiny / 'benchmark' / 'Tiny' / 'HR', root / 'benchmark' / 'Tiny' / 'HR')
    import degrade
    degrade.make_test_set(root, 'Tiny', 4, 'mix', 0, log=lambda *_: None, variants=4)
    exp = tmp_path / 'exp'
    proc = run_main(['--model', 'Bicubic', '--scale', '4', '--data_test', 'Tiny', '--dir_data',
                     root, '--test_only', '--n_threads', '0', '--degradation', 'mix',
                     '--save', 'mix'], exp_root=exp)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((root / 'benchmark' / 'Tiny' / 'LR_mix' / 'X4' / 'manifest.json')
                          .read_text())
    rows = (exp / 'mix' / 'metrics.csv').read_text().splitlines()[1:]
    psnr = {r.split(',')[2]: float(r.split(',')[3]) for r in rows}
    assert set(psnr) == {f'{s}+{k}' for s in 'ab' for k in range(4)}
    metrics = json.loads((exp / 'mix' / 'metrics.json').read_text())
    assert metrics['Tiny']['x4']['psnr'] == pytest.approx(np.mean(list(psnr.values())), abs=1e-5)
    for g, n in manifest['groups'].items():
        mine = [v for k, v in psnr.items() if manifest['images'][k]['group'] == g]
        assert len(mine) == n
        assert metrics[f'Tiny/{g}']['x4']['psnr'] == pytest.approx(np.mean(mine), abs=1e-5)
    log = (exp / 'mix' / 'log.txt').read_text()
    assert '[Tiny x4]  PSNR' in log and '[Tiny/' in log
    # a version whose LR file is gone is a user error naming the command
    (root / 'benchmark' / 'Tiny' / 'LR_mix' / 'X4' / 'a+1x4.png').unlink()
    gone = run_main(['--model', 'Bicubic', '--scale', '4', '--data_test', 'Tiny', '--dir_data',
                     root, '--test_only', '--n_threads', '0', '--degradation', 'mix',
                     '--save', 'mix2'], exp_root=exp)
    assert_user_error(gone, 'lists a+1', '--degradation mix --variants 4 --seed 0')


@pytest.mark.slow
def test_bsrgan_training_resumes_exactly(tiny, tmp_path):
    """--degradation bsrgan on the fly: 1 epoch + --load to 2 = 2 epochs, bit for bit."""
    _made(tiny, 'bsrgan')
    exp = tmp_path / 'exp'
    extra = ('--degradation', 'bsrgan', '--loss', '1*L1')
    d = _resumed_equals_uninterrupted(tiny, exp, extra)
    assert d['epoch'] == 2 and d['iteration'] == 6 and d['args']['degradation'] == 'bsrgan'
    log = (exp / 'full' / 'log.txt').read_text()
    assert '[Tiny x4]  PSNR:' in log and 'nan' not in log.lower()
    usm = run_main(_train(tiny, 'u', 1, *extra, '--degradation_usm_gt'), exp_root=exp)
    assert_user_error(usm, '--degradation_usm_gt', '--degradation bsrgan')
