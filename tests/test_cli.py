"""The command line as a user runs it: test-only evaluation, outputs, and user errors."""
import csv
import json
import re
import shutil
import uuid

import numpy as np
import pytest
from PIL import Image

from cli import REPO, assert_user_error, run_main

PUBLISHED_SET5 = {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)}


@pytest.fixture(scope='module')
def bicubic_set5(tmp_path_factory):
    root = tmp_path_factory.mktemp('exp')
    proc = run_main(['--model', 'Bicubic', '--scale', '2+3+4', '--data_test', 'Set5',
                     '--test_only', '--save', 'bicubic', '--n_threads', '0'], exp_root=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / 'bicubic', proc


def test_bicubic_set5_reproduces_published_table(bicubic_set5):
    folder, proc = bicubic_set5
    summary = json.loads((folder / 'metrics.json').read_text())
    for scale, (psnr, ssim) in PUBLISHED_SET5.items():
        got = summary['Set5'][f'x{scale}']
        assert abs(got['psnr'] - psnr) <= 0.03, (scale, got)
        assert abs(got['ssim'] - ssim) <= 0.001, (scale, got)
        m = re.search(rf'^\[Set5 x{scale}\]  PSNR: (\d+\.\d\d)  SSIM: (0\.\d{{4}})$', proc.stdout,
                      re.M)
        assert m, proc.stdout
        assert abs(float(m.group(1)) - got['psnr']) <= 0.005
        assert abs(float(m.group(2)) - got['ssim']) <= 0.00005
    with open(folder / 'metrics.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15
    assert {r['image'] for r in rows} == {'baby', 'bird', 'butterfly', 'head', 'woman'}
    x2 = [float(r['psnr']) for r in rows if r['scale'] == '2']
    assert abs(np.mean(x2) - summary['Set5']['x2']['psnr']) < 1e-3
    assert 'PSNR' in (folder / 'log.txt').read_text()
    assert '--test_only' in (folder / 'config.txt').read_text()


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_any_benchmark_folder_and_saved_results(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / 'data'
    for i in range(2):
        img = rng.integers(0, 256, size=(37 + i, 41, 3), dtype=np.uint8)
        _write_png(data / 'benchmark' / 'MyPhotos' / 'HR' / f'im{i}.png', img)
    proc = run_main(['--model', 'Bicubic', '--scale', '3', '--dir_data', data, '--data_test',
                     'MyPhotos', '--test_only', '--save_results', '--save_gt', '--save', 'mine',
                     '--n_threads', '0'], exp_root=tmp_path / 'exp')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '[MyPhotos x3]  PSNR:' in proc.stdout
    results = tmp_path / 'exp' / 'mine' / 'results-MyPhotos'
    sr = Image.open(results / 'im0_x3_SR.png')
    assert sr.size == (39, 36)   # HR cropped to a multiple of the scale: 41x37 -> 39x36
    assert (results / 'im1_x3_LR.png').is_file() and (results / 'im1_x3_HR.png').is_file()


def test_demo_folder_writes_sr_images(tmp_path):
    demo = tmp_path / 'demo'
    _write_png(demo / 'photo.png', np.full((10, 12, 3), 128, dtype=np.uint8))
    proc = run_main(['--model', 'Bicubic', '--scale', '2', '--data_test', 'Demo', '--dir_demo',
                     demo, '--test_only', '--save_results', '--save', 'demo', '--n_threads', '0'],
                    exp_root=tmp_path / 'exp')
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Image.open(tmp_path / 'exp' / 'demo' / 'results-Demo' / 'photo_x2_SR.png')
    assert out.size == (24, 20)
    assert np.abs(np.asarray(out).astype(int) - 128).max() <= 1


def test_runs_from_src_and_writes_to_repo_experiment():
    name = f'pytest_cwd_{uuid.uuid4().hex[:8]}'
    target = REPO / 'experiment' / name
    try:
        proc = run_main(['--model', 'Bicubic', '--scale', '4', '--data_test', 'Set5',
                         '--test_only', '--save', name, '--n_threads', '0'], cwd=REPO / 'src')
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (target / 'metrics.json').is_file()
        assert not (REPO / 'src' / 'experiment').exists()
    finally:
        shutil.rmtree(target, ignore_errors=True)


@pytest.mark.parametrize('argv,needles', [
    (['--model', 'NoSuchNet'], ['NoSuchNet', 'edsr']),
    (['--data_test', 'NoSuchSet'], ['NoSuchSet']),
    (['--dir_data', '/nonexistent/folder', '--data_test', 'Set5'], ['/nonexistent/folder']),
    (['--scale', 'two'], ['--scale']),
    (['--no_such_flag'], ['--no_such_flag']),
    (['--loss', '1*FOO'], ['FOO', 'L1']),
    (['--lr', 'abc'], ['--lr']),
    (['--load', 'old', '--reset'], ['--load old', '--reset']),
    (['--load', 'old'], ['--load old', 'checkpoint.pt does not exist']),
])
def test_user_errors_are_one_line_exit_2(tmp_path, argv, needles):
    base = ['--model', 'Bicubic', '--scale', '2', '--test_only', '--n_threads', '0']
    proc = run_main(base + argv, exp_root=tmp_path)
    assert_user_error(proc, *needles)


def test_unreadable_image_is_reported_by_path(tmp_path):
    folder = tmp_path / 'data' / 'benchmark' / 'Broken' / 'HR'
    folder.mkdir(parents=True)
    (folder / 'bad.png').write_bytes(b'this is not a png')
    proc = run_main(['--model', 'Bicubic', '--scale', '2', '--dir_data', tmp_path / 'data',
                     '--data_test', 'Broken', '--test_only', '--n_threads', '0'],
                    exp_root=tmp_path / 'exp')
    assert_user_error(proc, 'bad.png')


def test_test_image_too_small_to_measure_is_reported_by_name(tmp_path):
    # x2 shaves 2 pixels per side, leaving 8x8: less than the 11x11 SSIM window.
    _write_png(tmp_path / 'data' / 'benchmark' / 'Tiny' / 'HR' / 'small.png',
               np.full((12, 12, 3), 100, dtype=np.uint8))
    proc = run_main(['--model', 'Bicubic', '--scale', '2', '--dir_data', tmp_path / 'data',
                     '--data_test', 'Tiny', '--test_only', '--n_threads', '0'],
                    exp_root=tmp_path / 'exp')
    assert_user_error(proc, 'Tiny/small', 'x2')


def test_resume_from_nothing_is_a_user_error(tmp_path):
    proc = run_main(['--load', 'never_ran', '--data_train', 'Sample', '--n_threads', '0'],
                    exp_root=tmp_path)
    assert_user_error(proc, 'never_ran')
