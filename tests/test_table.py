"""src/table.py: the paper's table from runs' metrics.json, through its command line."""
import json
import subprocess
import sys

import pytest

from cli import REPO, assert_user_error, run_main

TABLE = REPO / 'src' / 'table.py'
PROTOCOL = {'protocol': 'ssl_paper', 'y_channel': 'float', 'crop_border': 'scale',
            'hr_modcrop': 12, 'div2k_benchmark': True, 'degradation': 'bicubic'}


def table(*args, root=None):
    env = {'PATH': '/usr/bin:/bin'}
    if root is not None:
        env['SR_EXPERIMENT_ROOT'] = str(root)
    return subprocess.run([sys.executable, str(TABLE), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)


def write_run(root, name, scores, protocol=PROTOCOL, **extra):
    folder = root / name
    folder.mkdir(parents=True)
    data = dict(scores)
    if protocol is not None:
        data['protocol'] = protocol
    data.update(extra)
    (folder / 'metrics.json').write_text(json.dumps(data))
    return folder


@pytest.fixture
def runs(tmp_path):
    write_run(tmp_path, 'esrgan', {
        'Set5': {'x4': {'psnr': 30.4512, 'lpips': 0.0748, 'fid': 40.1}},
        'Set14': {'x4': {'psnr': 26.28, 'lpips': 0.1329, 'fid': 70.0}}})
    write_run(tmp_path, 'esrgan_ssl', {
        'Set5': {'x4': {'psnr': 30.6, 'lpips': 0.0701, 'fid': None}},
        'Set14': {'x4': {'psnr': 26.2849, 'lpips': 0.1401, 'fid': 65.5}}})
    return tmp_path


def test_markdown_marks_the_best_per_column_with_arrows(runs):
    proc = table('esrgan', 'esrgan_ssl', root=runs)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        '| run | Set5 PSNR↑ | Set5 LPIPS↓ | Set5 FID↓ | Set14 PSNR↑ | Set14 LPIPS↓ '
        '| Set14 FID↓ |',
        '|---|---:|---:|---:|---:|---:|---:|',
        '| esrgan | 30.45 | 0.0748 | **40.10** | **26.28** | **0.1329** | 70.00 |',
        '| esrgan_ssl | **30.60** | **0.0701** | - | **26.28** | 0.1401 | **65.50** |']


def test_latex_and_csv(runs):
    proc = table('esrgan', runs / 'esrgan_ssl', '--format', 'latex', '--datasets', 'Set14',
                 '--metrics', 'lpips+psnr', root=runs)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == r'\begin{tabular}{lcc}' and r'\multicolumn{2}{c}{Set14}' in lines[2]
    assert lines[4] == r' & LPIPS$\downarrow$ & PSNR$\uparrow$ \\'
    assert lines[6] == r'esrgan & \textbf{0.1329} & \textbf{26.28} \\'
    assert lines[7] == r'esrgan\_ssl & 0.1401 & \textbf{26.28} \\'
    proc = table(runs / 'esrgan' / 'metrics.json', 'esrgan_ssl', '--format', 'csv',
                 '--metrics', 'fid', '--labels', 'A,B', root=runs)
    assert proc.stdout.splitlines() == ['run,Set5 x4 FID,Set14 x4 FID', 'A,40.10,70.00',
                                        'B,-,65.50', 'best,A,B']


def test_runs_measured_differently_are_refused_naming_the_difference(runs):
    write_run(runs, 'edsr_rounded', {'Set5': {'x4': {'psnr': 30.0}}},
              protocol={**PROTOCOL, 'y_channel': 'rounded'})
    proc = table('esrgan', 'edsr_rounded', root=runs)
    assert_user_error(proc, 'protocol.y_channel "float" in esrgan, "rounded" in edsr_rounded')
    # A record some runs have and others lack (e.g. the LR set's identity) is a difference.
    write_run(runs, 'degraded', {'Set5': {'x4': {'psnr': 22.1}, 'lr_set': {'seed': 5}}})
    proc = table('esrgan', 'degraded', root=runs)
    assert_user_error(proc, 'Set5.lr_set.seed (not recorded) in esrgan, 5 in degraded')
    write_run(runs, 'old', {'Set5': {'x4': {'psnr': 30.0}}}, protocol=None)
    assert_user_error(table('old', 'esrgan', root=runs), 'protocol.y_channel (not recorded)')


@pytest.mark.parametrize('args, needle', [
    (['nope'], 'run nope: no such file or folder'),
    (['esrgan', '--datasets', 'Urban100'], "no run has 'Urban100' among its datasets"),
    (['esrgan', '--labels', 'a,b'], '--labels has 2 names for 1 runs'),
    (['esrgan', '--format', 'html'], 'invalid choice'),
])
def test_mistakes_exit_2_with_one_line(runs, args, needle):
    assert_user_error(table(*args, root=runs), needle)


def test_a_run_folder_without_metrics_json_and_a_broken_file(runs):
    (runs / 'empty').mkdir()
    assert_user_error(table('empty', root=runs), 'has no metrics.json')
    (runs / 'broken').mkdir()
    (runs / 'broken' / 'metrics.json').write_text('{"Set5": ')
    assert_user_error(table('broken', root=runs), 'cannot be read as JSON')


@pytest.mark.slow
def test_table_of_real_runs(tmp_path):
    for name, flags in (('bicubic', []), ('bicubic_float', ['--y_channel', 'float'])):
        proc = run_main(['--model', 'Bicubic', '--scale', '4', '--data_test', 'Set5',
                         '--test_only', '--save', name, '--n_threads', '0', *flags],
                        exp_root=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert_user_error(table('bicubic', 'bicubic_float', root=tmp_path),
                      'protocol.y_channel "rounded" in bicubic, "float" in bicubic_float')
    proc = table('bicubic', 'bicubic', '--labels', 'a,b', root=tmp_path)
    summary = json.loads((tmp_path / 'bicubic' / 'metrics.json').read_text())
    psnr = f"{summary['Set5']['x4']['psnr']:.2f}"
    assert f'| a | **{psnr}** |' in proc.stdout and f'| b | **{psnr}** |' in proc.stdout


def test_records_of_a_dataset_are_compared_among_runs_that_scored_it(tmp_path):
    lr5, lr14 = {'degradation': 'realesrgan', 'seed': 0}, {'degradation': 'realesrgan', 'seed': 0}
    write_run(tmp_path, 'a', {'Set5': {'x4': {'psnr': 24.0}}}, _lr_sets={'Set5': {'x4': lr5}})
    write_run(tmp_path, 'b', {'Set5': {'x4': {'psnr': 24.5}}, 'Set14': {'x4': {'psnr': 22.0}}},
              _lr_sets={'Set5': {'x4': lr5}, 'Set14': {'x4': lr14}})
    proc = table('a', 'b', root=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '| a | 24.00 | - |' in proc.stdout and '| b | **24.50** | **22.00** |' in proc.stdout
    write_run(tmp_path, 'c', {'Set5': {'x4': {'psnr': 24.1}}},
              _lr_sets={'Set5': {'x4': {**lr5, 'seed': 5}}})
    assert_user_error(table('a', 'b', 'c', root=tmp_path),
                      '_lr_sets.Set5.x4.seed 0 in a, 0 in b, 5 in c')
