"""src/prepare_data.py (DF2K / OST multiscale sub-images) and the DF2K and OST training sets."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import data
import prepare_data
import utility
from cli import REPO
from conftest import make_args


def test_sizes_and_crops_follow_the_official_scripts():
    # DIV2K 0001 is 2040x1356: x0.75 and x0.6 keep a short side >= 512, x1/3 does not
    assert prepare_data.sizes(2040, 1356) == [('T0', (1530, 1017)), ('T1', (1224, 813)),
                                              ('S', (770, 512)), ('', (2040, 1356))]
    # portrait, too small for the original: only the short-side-512 version
    assert prepare_data.sizes(400, 700) == [('S', (512, 896))]
    assert prepare_data.starts(512) == [0]
    assert prepare_data.starts(1017) == [0, 256, 505]       # last crop flush with the edge
    assert prepare_data.starts(1024) == [0, 256, 512]


def _write(path, w, h, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def _run(*argv):
    return subprocess.run([sys.executable, str(REPO / 'src' / 'prepare_data.py'), *map(str, argv)],
                          capture_output=True, text=True, timeout=300)


def test_df2k_is_written_once_and_read_as_a_training_set(tmp_path):
    _write(tmp_path / 'DIV2K' / 'DIV2K_train_HR' / '0001.png', 700, 600, 0)
    _write(tmp_path / 'Flickr2K' / 'Flickr2K_HR' / '000001.png', 520, 530, 1)
    proc = _run('DF2K', '--dir_data', tmp_path, '--workers', 1)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / 'DF2K' / 'multiscale_HR_sub_512'
    names = sorted(p.name for p in out.iterdir())
    # 0001: S (597x512: 2 crops) and itself (700x600: 2 x 2); 000001: S (512x521: 2) and
    # itself (520x530: 2 x 2)
    assert names == ['000001S_s001.png', '000001S_s002.png'] + [
        f'000001_s{i:03d}.png' for i in range(1, 5)] + [
        '0001S_s001.png', '0001S_s002.png'] + [f'0001_s{i:03d}.png' for i in range(1, 5)]
    original = np.asarray(Image.open(tmp_path / 'DIV2K' / 'DIV2K_train_HR' / '0001.png'))
    # crop 4 of the original: rows 600-512=88.., columns 700-512=188..
    assert np.array_equal(np.asarray(Image.open(out / '0001_s004.png')),
                          original[88:600, 188:700])
    assert all(Image.open(out / n).size == (512, 512) for n in names)

    again = _run('DF2K', '--dir_data', tmp_path)
    assert again.returncode == 2 and 'already exists' in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    args = make_args('--data_train', 'DF2K', '--dir_data', tmp_path, '--scale', '4',
                     '--patch_size', '128')
    train_set = data.make_dataset(args, 'DF2K', train=True)
    assert len(train_set.hr_paths) == len(names)


def test_missing_sources_and_sets_name_what_to_download(tmp_path):
    proc = _run('OST', '--dir_data', tmp_path)
    assert proc.returncode == 2, proc.stderr
    line, = proc.stderr.strip().splitlines()
    assert 'OutdoorSceneTrain_v2' in line and str(tmp_path / 'OST') in line
    _write(tmp_path / 'DIV2K' / 'DIV2K_train_HR' / '0001.png', 520, 520, 0)
    proc = _run('DF2K', '--dir_data', tmp_path)
    line, = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and 'Flickr2K_HR' in line and 'Flickr2K.tar' in line
    assert not (tmp_path / 'DF2K').exists()
    for name in ('DF2K', 'OST'):
        args = make_args('--data_train', name, '--dir_data', tmp_path)
        with pytest.raises(utility.UserError, match=f'prepare_data.py {name}') as info:
            data.make_dataset(args, name, train=True)
        assert '\n' not in str(info.value)
