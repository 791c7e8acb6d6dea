"""compare.py: crops are the box of each image, labels are the runs' metrics.csv values."""
import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cli import REPO, assert_user_error, run_main

import compare

SCRIPT = REPO / 'src' / 'compare.py'
HR = REPO / 'dataset' / 'benchmark' / 'Set5' / 'HR' / 'butterfly.png'


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Two test-only runs on the bundled Set5 with --save_results: Bicubic and a tiny EDSR
    with random weights."""
    import torch

    import model as model_pkg
    from conftest import TINY, make_args
    root = tmp_path_factory.mktemp('exp')
    weights = root / 'edsr_random.pt'    # a test-only run needs weights: random ones
    net = model_pkg.Model(make_args(*TINY, '--scale', '2'), torch.device('cpu'))
    torch.save(net.get_model().state_dict(), weights)
    common = ['--scale', '2', '--data_test', 'Set5', '--test_only', '--save_results',
              '--n_threads', '0']
    for save, model in (('bic', ['--model', 'Bicubic']),
                        ('edsr', [*TINY, '--pre_train', weights])):
        proc = run_main(model + common + ['--save', save], exp_root=root)
        assert proc.returncode == 0, proc.stderr[-2000:]
    return root


def _csv_row(folder, image):
    with open(folder / 'metrics.csv', newline='') as f:
        return next(r for r in csv.DictReader(f) if r['image'] == image and r['scale'] == '2')


def _opts(*argv):
    return compare.build_parser().parse_args(list(map(str, argv)))


@pytest.mark.slow
def test_crops_are_the_box_and_labels_are_metrics_csv(runs, tmp_path):
    # An extra metric column (as an LPIPS-computing run would write) is read and shown too.
    edsr = tmp_path / 'edsr_lpips'
    shutil.copytree(runs / 'edsr', edsr)
    text = (edsr / 'metrics.csv').read_text().splitlines()
    text = [text[0] + ',lpips'] + [line + f',0.{i + 1}234' for i, line in enumerate(text[1:])]
    (edsr / 'metrics.csv').write_text('\n'.join(text) + '\n')

    box = (100, 60, 64, 48)
    opts = _opts('--runs', runs / 'bic', edsr, '--image', 'butterfly', '--box', '100,60,64,48',
                 '--out', tmp_path / 'f.png')
    hr, panels, scale = compare.collect(opts)
    assert scale == 2
    assert [p['name'] for p in panels] == ['HR', 'Bicubic x2', 'bic', 'edsr_lpips']
    hr_file = np.asarray(Image.open(HR).convert('RGB'))
    np.testing.assert_array_equal(hr, hr_file)    # 256x256: already a multiple of 2

    fig = compare.make_figure(hr, panels, box, 'test')
    crops = {a.get_title(): a for a in fig.get_axes()}
    np.testing.assert_array_equal(crops['HR'].images[0].get_array(), hr_file[60:108, 100:164])
    for name in ('bic', 'edsr_lpips'):
        sr = np.asarray(Image.open(runs / name.split('_')[0] / 'results-Set5' /
                                   'butterfly_x2_SR.png').convert('RGB'))
        np.testing.assert_array_equal(crops[name].images[0].get_array(), sr[60:108, 100:164])
        row = _csv_row(edsr if name == 'edsr_lpips' else runs / name, 'butterfly')
        label = crops[name].get_xlabel()
        assert f'PSNR {float(row["psnr"]):.2f} dB' in label
        assert f'SSIM {float(row["ssim"]):.4f}' in label
        panel = next(p for p in panels if p['name'] == name)
        assert panel['metrics']['psnr'] == float(row['psnr'])
        assert panel['metrics']['ssim'] == float(row['ssim'])
    lpips = float(_csv_row(edsr, 'butterfly')['lpips'])
    assert f'LPIPS {lpips:.4f}' in crops['edsr_lpips'].get_xlabel()
    assert next(p for p in panels if p['name'] == 'edsr_lpips')['metrics']['lpips'] == lpips
    assert 'LPIPS' not in crops['bic'].get_xlabel()

    # The bicubic panel is the Bicubic model's output, with the metrics the run wrote.
    bic = next(p for p in panels if p['name'] == 'Bicubic x2')
    np.testing.assert_array_equal(bic['image'], next(p for p in panels if p['name'] == 'bic')
                                  ['image'])
    row = _csv_row(runs / 'bic', 'butterfly')
    assert bic['metrics']['psnr'] == pytest.approx(float(row['psnr']), abs=1e-4)
    assert bic['metrics']['ssim'] == pytest.approx(float(row['ssim']), abs=1e-6)


def _run(*argv, exp_root=None):
    import os
    env = dict(os.environ)
    if exp_root is not None:
        env['SR_EXPERIMENT_ROOT'] = str(exp_root)
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, argv)], capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.mark.slow
def test_cli_writes_the_figure_and_refuses_mistakes(runs, tmp_path):
    out = tmp_path / 'fig.png'
    ok = _run('--runs', 'bic', 'edsr', '--image', 'butterfly', '--box', '10,20,40,30',
              '--out', out, exp_root=runs)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert Image.open(out).size[0] > 800
    assert 'edsr PSNR' in ok.stdout

    outside = _run('--runs', 'bic', '--image', 'butterfly', '--box', '200,60,64,48',
                   '--out', tmp_path / 'x.png', exp_root=runs)
    assert_user_error(outside, '--box 200,60,64,48', 'outside the 256x256')
    bare = tmp_path / 'bare'
    bare.mkdir()
    shutil.copy(runs / 'bic' / 'metrics.csv', bare)
    missing = _run('--runs', 'bic', bare, '--image', 'butterfly', '--box', '0,0,8,8',
                   '--out', tmp_path / 'x.png', exp_root=runs)
    assert_user_error(missing, 'run bare has no results-Set5/butterfly_x2_SR.png', '--save_results')
    nothing = _run('--runs', 'nope', '--image', 'butterfly', '--box', '0,0,8,8',
                   '--out', tmp_path / 'x.png', exp_root=runs)
    assert_user_error(nothing, 'run nope')
    bad_box = _run('--runs', 'bic', '--image', 'butterfly', '--box', '0,0,8', '--out',
                   tmp_path / 'x.png', exp_root=runs)
    assert_user_error(bad_box, '--box')
    assert not (tmp_path / 'x.png').exists()
