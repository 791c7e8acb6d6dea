"""Degraded test sets are never replaced silently, and every evaluation says which LR images
it read (issue 26, item 1): degrade.py, main.py's score line, log.txt, metrics.json,
metrics.csv, and compare.py refusing runs evaluated on different sets."""
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import compare
import lr_set
from cli import REPO, assert_user_error, run_main
from conftest import tiny_benchmark

DEGRADE = REPO / 'src' / 'degrade.py'
COMPARE = REPO / 'src' / 'compare.py'


def _script(script, *args, exp_root=None):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    if exp_root is not None:
        env['SR_EXPERIMENT_ROOT'] = str(exp_root)
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def _hr(root):
    return tiny_benchmark(root, [('butterfly.png', (40, 40, 136, 136), 'a.png'),
                                 ('baby.png', (200, 180, 264, 244), 'b.png')])


@pytest.fixture(scope='module')
def sets(tmp_path_factory):
    """Two --dir_data with the same HR images: 'zero' with the realesrgan set of seed 0,
    'five' with that of seed 5 (made in-process; the CLI is tested below)."""
    import degrade
    roots = {}
    for seed, name in ((0, 'zero'), (5, 'five')):
        roots[name] = _hr(tmp_path_factory.mktemp(name))
        degrade.make_test_set(roots[name], 'Tiny', 4, 'realesrgan', seed, log=lambda *_: None)
    return roots


def _lr_dir(root):
    return root / 'benchmark' / 'Tiny' / 'LR_realesrgan' / 'X4'


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- degrade.py never replaces a set made with other settings ------------------------------

def test_degrade_refuses_to_replace_a_set_of_another_seed(tmp_path):
    root = _hr(tmp_path / 'data')
    base = ['--dir_data', root, '--data_test', 'Tiny', '--scale', '4']
    first = _script(DEGRADE, *base, '--seed', '0')
    assert first.returncode == 0, first.stderr
    before = _files(_lr_dir(root))
    other = _script(DEGRADE, *base, '--seed', '5')
    assert_user_error(other, str(_lr_dir(root)), 'seed 0', 'this command: seed 5',
                      'not replaced', 'delete that folder first')
    assert _files(_lr_dir(root)) == before
    again = _script(DEGRADE, *base, '--seed', '0')               # same settings: same bytes
    assert again.returncode == 0, again.stderr
    assert _files(_lr_dir(root)) == before
    manifest = json.loads(before['manifest.json'])
    assert manifest['images']['a']['sha256'] == hashlib.sha256(before['ax4.png']).hexdigest()
    # A folder of LR images without a manifest (made by hand, or an interrupted run).
    (_lr_dir(root) / 'manifest.json').unlink()
    bare = _script(DEGRADE, *base, '--seed', '0')
    assert_user_error(bare, str(_lr_dir(root)), 'no manifest.json', 'not replaced')


def test_identity_names_the_set_not_the_path(sets, tmp_path):
    zero = lr_set.identity(sets['zero'] / 'benchmark' / 'Tiny', 'realesrgan', 4)
    five = lr_set.identity(sets['five'] / 'benchmark' / 'Tiny', 'realesrgan', 4)
    assert zero['degradation'] == 'realesrgan' and (zero['lr_seed'], five['lr_seed']) == (0, 5)
    assert re.fullmatch(r'[0-9a-f]{12}', zero['lr_manifest'])
    assert zero['lr_manifest'] != five['lr_manifest']
    # The same set made from another path (the command in the manifest differs): one digest.
    copy = tmp_path / 'copy'
    shutil.copytree(sets['zero'], copy)
    manifest = json.loads((_lr_dir(copy) / 'manifest.json').read_text())
    manifest['command'] = manifest['command'].replace(str(sets['zero']), str(copy))
    (_lr_dir(copy) / 'manifest.json').write_text(json.dumps(manifest))
    assert lr_set.identity(copy / 'benchmark' / 'Tiny', 'realesrgan', 4) == zero
    assert lr_set.identity(copy / 'benchmark' / 'Tiny', 'bicubic', 4) == lr_set.BICUBIC


# -- every evaluation records its LR set ---------------------------------------------------

def _evaluate(root, exp, save, *flags):
    proc = run_main(['--model', 'Bicubic', '--scale', '4', '--data_test', 'Tiny', '--dir_data',
                     root, '--test_only', '--n_threads', '0', '--save_results', '--save', save,
                     *flags], exp_root=exp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope='module')
def evaluated(sets, tmp_path_factory):
    """Test-only Bicubic runs: 'bic' (bicubic LR), 'deg0' and 'deg0b' (seed 0), 'deg5'."""
    exp = tmp_path_factory.mktemp('exp')
    procs = {'bic': _evaluate(sets['zero'], exp, 'bic')}
    for save, root in (('deg0', 'zero'), ('deg0b', 'zero'), ('deg5', 'five')):
        procs[save] = _evaluate(sets[root], exp, save, '--degradation', 'realesrgan')
    return exp, procs


def test_evaluation_prints_and_writes_the_lr_set(sets, evaluated):
    exp, procs = evaluated
    ident = lr_set.identity(sets['zero'] / 'benchmark' / 'Tiny', 'realesrgan', 4)
    digest = ident['lr_manifest']
    line = re.search(r'^\[Tiny x4\]  PSNR: \d+\.\d\d  SSIM: 0\.\d{4}  '
                     rf'\(LR: realesrgan seed 0, manifest {digest}\)$', procs['deg0'].stdout, re.M)
    assert line, procs['deg0'].stdout
    assert line.group(0) in (exp / 'deg0' / 'log.txt').read_text()
    summary = json.loads((exp / 'deg0' / 'metrics.json').read_text())
    assert summary['_lr_sets'] == {'Tiny': {'x4': ident}}
    assert list(summary['Tiny']['x4']) == ['psnr', 'ssim']
    with open(exp / 'deg0' / 'metrics.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ['dataset', 'scale', 'image', 'psnr', 'ssim', 'degradation',
                             'lr_seed', 'lr_manifest']
    assert {(r['degradation'], r['lr_seed'], r['lr_manifest']) for r in rows} == {
        ('realesrgan', '0', digest)}
    # Seed 5: another digest in every record.
    five = json.loads((exp / 'deg5' / 'metrics.json').read_text())['_lr_sets']['Tiny']['x4']
    assert five['lr_seed'] == 5 and five['lr_manifest'] != digest
    assert f'(LR: realesrgan seed 5, manifest {five["lr_manifest"]})' in procs['deg5'].stdout
    # Bicubic: recorded as such, the score line as before.
    bic = json.loads((exp / 'bic' / 'metrics.json').read_text())
    assert bic['_lr_sets'] == {'Tiny': {'x4': lr_set.BICUBIC}}
    assert re.search(r'^\[Tiny x4\]  PSNR: \d+\.\d\d  SSIM: 0\.\d{4}$', procs['bic'].stdout, re.M)
    with open(exp / 'bic' / 'metrics.csv', newline='') as f:
        assert {(r['degradation'], r['lr_seed'], r['lr_manifest'])
                for r in csv.DictReader(f)} == {('bicubic', '', '')}


# -- comparing runs evaluated on different sets is refused ---------------------------------

@pytest.mark.parametrize('other, needle', [('deg5', 'realesrgan seed 5'), ('bic', 'bicubic')])
def test_compare_refuses_runs_on_different_lr_sets(evaluated, tmp_path, other, needle):
    exp, _ = evaluated
    proc = _script(COMPARE, '--runs', 'deg0', other, '--dataset', 'Tiny', '--image', 'a',
                   '--box', '0,0,16,16', '--out', tmp_path / 'f.png', exp_root=exp)
    assert_user_error(proc, 'runs deg0 and ' + other, 'different LR images of Tiny x4',
                      'realesrgan seed 0', needle)
    assert not (tmp_path / 'f.png').exists()


def test_compare_on_one_degraded_set_uses_its_lr_and_the_runs_dir_data(evaluated, tmp_path):
    exp, _ = evaluated
    # No --dir_data: the runs' own (from config.txt); --image with its extension.
    proc = _script(COMPARE, '--runs', 'deg0', 'deg0b', '--dataset', 'Tiny', '--image', 'a.png',
                   '--box', '0,0,16,16', '--out', tmp_path / 'f.png', exp_root=exp)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / 'f.png').is_file()
    opts = compare.build_parser().parse_args(['--runs', str(exp / 'deg0'), '--dataset', 'Tiny',
                                              '--image', 'a', '--box', '0,0,8,8', '--out',
                                              str(tmp_path / 'g.png')])
    _, panels, _ = compare.collect(opts)
    # The bicubic panel upscales the degraded LR the runs read: the Bicubic run's own output.
    np.testing.assert_array_equal(panels[1]['image'], panels[2]['image'])
    # Pointed at the other seed's data, the bicubic panel would not be of the runs' LR.
    wrong = _script(COMPARE, '--runs', 'deg0', '--dataset', 'Tiny', '--image', 'a', '--box',
                    '0,0,8,8', '--dir_data', compare.run_setting(exp / 'deg5', 'dir_data'), '--out',
                    tmp_path / 'h.png', exp_root=exp)
    assert_user_error(wrong, 'realesrgan seed 0', 'realesrgan seed 5', 'give the --dir_data')

