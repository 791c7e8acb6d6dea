"""Datasets on tiny images made in tmp_path: benchmark folders, caches, DIV2K, Demo, Sample,
image conversions, errors and deterministic training batches."""
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import data
import option
import utility
from data import _image, _srdata, sample
from imresize import imresize


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    """Every cache of these tests goes to tmp_path/cache, not the repository's .cache."""
    root = tmp_path / 'cache'
    monkeypatch.setattr(_srdata, 'CACHE_ROOT', root)
    return root


def photo(h, w, seed, c=3):
    """A smooth 8-bit image with some texture, uint8 [h, w, c]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 70 * np.sin(xx / 4.0 + seed)[..., None] * np.cos(yy / 6.0 + seed)[..., None]
    return np.clip(base + rng.normal(0, 6, (h, w, c)), 0, 255).round().astype(np.uint8)


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(path)


def png16(path, array):
    """Write a 16-bit PNG ([H, W, C] uint16, C in 1..4) with no filtering (Pillow cannot)."""
    h, w, c = array.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = b''.join(b'\x00' + array[y].astype('>u2').tobytes() for y in range(h))

    def chunk(kind, body):
        return (struct.pack('>I', len(body)) + kind + body
                + struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff))
    path.write_bytes(b'\x89PNG\r\n\x1a\n'
                     + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, colour_type, 0, 0, 0))
                     + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


def parse(*flags):
    return option.parse_args(['--n_threads', '0', *flags])


def make_benchmark(root, name='MyBench', sizes=((37, 50), (30, 42))):
    for k, (h, w) in enumerate(sizes):
        save(root / 'benchmark' / name / 'HR' / f'img{k}.png', photo(h, w, k))
    return root / 'benchmark' / name


# -- benchmark folders ----------------------------------------------------------------------

def test_new_benchmark_folder_evaluates_with_generated_lr(tmp_path, cache_in_tmp):
    folder = make_benchmark(tmp_path)
    args = parse('--dir_data', str(tmp_path), '--data_test', 'MyBench', '--scale', '2+3',
                 '--test_only', '--ext', 'img')
    d = data.Data(args)
    assert d.loader_train is None
    loader = d.loader_test[0]
    ds = loader.dataset
    assert (ds.name, ds.benchmark, len(ds)) == ('MyBench', True, 2)
    hr_full = _image.read_image(folder / 'HR' / 'img0.png')
    for idx, s in enumerate((2, 3)):
        ds.set_scale(idx)
        lr, hr, names = next(iter(loader))
        assert list(names) == ['img0']
        h, w = 37 // s * s, 50 // s * s
        assert hr.shape == (1, 3, h, w) and lr.shape == (1, 3, h // s, w // s)
        assert lr.dtype == torch.float32
        assert torch.equal(hr[0], torch.from_numpy(hr_full[:h, :w].transpose(2, 0, 1)).float())
        x = torch.from_numpy(hr_full[:h, :w].transpose(2, 0, 1)).double()
        expected = imresize(x, 1 / s).round().clamp(0, 255).float()
        assert torch.equal(lr[0], expected)
        cached = list((cache_in_tmp / 'lr_bicubic').rglob(f'X{s}/img0_*.npy'))
        assert len(cached) == 1
        assert np.array_equal(np.load(cached[0], allow_pickle=False),
                              lr[0].numpy().transpose(1, 2, 0).astype(np.uint8))
    assert not list(cache_in_tmp.rglob('*.tmp'))


def test_lr_bicubic_folder_is_used_when_present(tmp_path):
    folder = make_benchmark(tmp_path)
    given = photo(37 // 2, 50 // 2, 99)
    save(folder / 'LR_bicubic' / 'X2' / 'img0x2.png', given)
    ds = data.make_dataset(parse('--dir_data', str(tmp_path), '--scale', '2', '--ext', 'img'),
                           'MyBench', train=False)
    lr, hr, name = ds[0]
    assert name == 'img0' and hr.shape == (3, 36, 50)
    assert torch.equal(lr, torch.from_numpy(given.transpose(2, 0, 1)).float())


def test_rgb_range_scales_values(tmp_path):
    make_benchmark(tmp_path)
    base = parse('--dir_data', str(tmp_path), '--scale', '2', '--ext', 'img')
    lr255, hr255, _ = data.make_dataset(base, 'MyBench', False)[1]
    lr1, hr1, _ = data.make_dataset(base.replace(rgb_range=1), 'MyBench', False)[1]
    assert torch.allclose(hr1 * 255, hr255, atol=1e-4)
    assert torch.allclose(lr1 * 255, lr255, atol=1e-4)


def test_interrupted_cache_write_leaves_nothing_behind(tmp_path, cache_in_tmp, monkeypatch):
    make_benchmark(tmp_path)
    ds = data.make_dataset(parse('--dir_data', str(tmp_path), '--scale', '2', '--ext', 'img'),
                           'MyBench', train=False)

    def interrupted(src, dst):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(os, 'replace', interrupted)
        with pytest.raises(KeyboardInterrupt):
            ds[0]
    assert [p for p in cache_in_tmp.rglob('*') if p.is_file()] == []
    lr, _, _ = ds[0]
    cached = next(cache_in_tmp.rglob('img0_*.npy'))
    # A damaged cache file (e.g. from a full disk) is made again, never trusted.
    cached.write_bytes(cached.read_bytes()[:60])
    lr_again, _, _ = ds[0]
    assert torch.equal(lr, lr_again)
    assert np.load(cached, allow_pickle=False).shape == (18, 25, 3)


def test_unknown_dataset_lists_files_and_folders(tmp_path):
    make_benchmark(tmp_path)
    args = parse('--dir_data', str(tmp_path))
    with pytest.raises(utility.UserError) as e:
        data.make_dataset(args, 'Nope', train=False)
    message = str(e.value)
    assert 'Nope' in message and 'MyBench' in message and 'DIV2K' in message and 'Sample' in message
    with pytest.raises(utility.UserError, match='--dir_data'):
        data.make_dataset(parse('--dir_data', str(tmp_path / 'missing')), 'Set5', train=False)
    with pytest.raises(utility.UserError):
        data.make_dataset(args, '../MyBench', train=False)


def test_unreadable_image_is_reported_with_its_path(tmp_path):
    folder = make_benchmark(tmp_path)
    bad = folder / 'HR' / 'zzz.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n' + b'not really a png')
    ds = data.make_dataset(parse('--dir_data', str(tmp_path), '--scale', '2', '--ext', 'img'),
                           'MyBench', train=False)
    with pytest.raises(utility.UserError, match=str(bad)):
        ds[2]
    # Read in a DataLoader worker: the same one-line error, not the worker's traceback.
    args = parse('--dir_data', str(tmp_path), '--scale', '2', '--ext', 'img', '--data_test',
                 'MyBench', '--data_train', 'MyBench', '--patch_size', '8', '--batch_size', '3',
                 '--test_every', '1')
    d = data.Data(args.replace(n_threads=1))
    for loader in (d.loader_test[0], d.loader_train):
        with pytest.raises(utility.UserError) as e:
            list(loader)
        assert str(bad) in str(e.value) and '\n' not in str(e.value)


def test_cli_reports_unreadable_image_and_unknown_dataset_in_one_line(tmp_path):
    folder = make_benchmark(tmp_path)
    bad = folder / 'HR' / 'a_broken.png'      # read first: nothing gets cached before it
    bad.write_bytes(b'\x89PNG\r\n\x1a\n')
    save_name = f'pytest_data_cli_{os.getpid()}'
    try:
        for name, expected in (('MyBench', str(bad)), ('Nope', 'MyBench')):
            run = subprocess.run(
                [sys.executable, str(utility.REPO_ROOT / 'src' / 'main.py'), '--model', 'Bicubic',
                 '--scale', '2', '--data_test', name, '--dir_data', str(tmp_path), '--test_only',
                 '--ext', 'img', '--n_threads', '0', '--save', save_name],
                capture_output=True, text=True, timeout=300)
            assert run.returncode == 2, run.stderr
            lines = run.stderr.strip().splitlines()
            assert len(lines) == 1 and expected in lines[0], run.stderr
    finally:
        shutil.rmtree(utility.EXPERIMENT_ROOT / save_name, ignore_errors=True)


# -- image conversions ----------------------------------------------------------------------

def test_grayscale_is_replicated_or_kept_and_rgb_goes_to_y(tmp_path):
    gray = photo(9, 11, 0, c=1)
    save(tmp_path / 'g.png', gray)
    img = _image.read_image(tmp_path / 'g.png')
    assert img.shape == (9, 11, 1) and np.array_equal(img, gray)
    assert np.array_equal(_image.set_channels(img, 3), np.repeat(gray, 3, axis=2))
    rgb = photo(9, 11, 1)
    y = _image.set_channels(rgb, 1)
    r, g, b = (rgb[..., k].astype(float) for k in range(3))
    assert np.array_equal(y[..., 0], np.floor(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
                                              + 0.5).astype(np.uint8))


def test_rgba_drops_alpha(tmp_path):
    rgba = np.concatenate([photo(8, 10, 2), np.full((8, 10, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'a.png')
    assert np.array_equal(_image.read_image(tmp_path / 'a.png'), rgba[..., :3])


@pytest.mark.parametrize('channels', [1, 3, 4])
def test_16bit_png_is_rounded_to_8bit(tmp_path, channels):
    rng = np.random.default_rng(channels)
    values = rng.integers(0, 65536, (7, 9, channels)).astype(np.uint16)
    values[0, 0, 0], values[0, 1, 0] = 32767 + 128, 257 * 200 + 128    # halves round up
    png16(tmp_path / 'deep.png', values)
    img = _image.read_image(tmp_path / 'deep.png')
    kept = values[..., :1] if channels == 1 else values[..., :3]
    assert np.array_equal(img, np.floor(kept.astype(np.float64) * 255 / 65535 + 0.5))


def test_16bit_png_with_filters_written_by_opencv(tmp_path):
    cv2 = pytest.importorskip('cv2')
    values = np.random.default_rng(0).integers(0, 65536, (21, 33, 3)).astype(np.uint16)
    values[:, :12] = np.linspace(0, 65535, 12).astype(np.uint16)[None, :, None]
    cv2.imwrite(str(tmp_path / 'cv.png'), values[..., ::-1])
    img = _image.read_image(tmp_path / 'cv.png')
    assert np.array_equal(img, np.floor(values.astype(np.float64) * 255 / 65535 + 0.5))


def test_missing_and_empty_files_raise_user_error(tmp_path):
    with pytest.raises(utility.UserError, match='nothing.png'):
        _image.read_image(tmp_path / 'nothing.png')
    (tmp_path / 'empty.png').write_bytes(b'')
    with pytest.raises(utility.UserError, match='empty.png'):
        _image.read_image(tmp_path / 'empty.png')


def test_empty_benchmark_folder_names_the_folder(tmp_path):
    (tmp_path / 'benchmark' / 'Empty' / 'HR').mkdir(parents=True)
    with pytest.raises(utility.UserError, match='Empty/HR holds no image files'):
        data.make_dataset(parse('--dir_data', str(tmp_path)), 'Empty', train=False)


# -- DIV2K ------------------------------------------------------------------------------------

def make_div2k(root):
    base = root / 'DIV2K'
    for k in range(1, 5):
        save(base / 'DIV2K_train_HR' / f'{k:04d}.png', photo(24, 28, k))
    save(base / 'DIV2K_valid_HR' / '0005.png', photo(24, 28, 5))
    given = photo(12, 14, 42)
    save(base / 'DIV2K_train_LR_bicubic' / 'X2' / '0001x2.png', given)
    return base, given


def test_div2k_layout_and_data_range(tmp_path):
    _, given = make_div2k(tmp_path)
    args = parse('--dir_data', str(tmp_path), '--data_range', '1-3/4-5', '--scale', '2',
                 '--ext', 'img')
    train = data.make_dataset(args, 'DIV2K', train=True)
    test = data.make_dataset(args, 'DIV2K', train=False)
    assert train.image_names == ['0001', '0002', '0003']
    assert test.image_names == ['0004', '0005']          # 0005 from DIV2K_valid_HR
    assert (train.benchmark, test.benchmark) == (False, False)
    lr, hr, name = train[0]
    assert torch.equal(lr, torch.from_numpy(given.transpose(2, 0, 1)).float())
    lr, hr, name = test[1]                               # no LR file: made from the HR
    assert name == '0005' and lr.shape == (3, 12, 14) and hr.shape == (3, 24, 28)
    only = data.make_dataset(args.replace(data_range='2-3', test_only=True), 'DIV2K', train=False)
    assert only.image_names == ['0002', '0003']
    # Training and testing on DIV2K with one range would test on the training images.
    with pytest.raises(utility.UserError, match='1-800/801-900'):
        data.make_dataset(args.replace(data_range='2-3'), 'DIV2K', train=False)
    assert data.make_dataset(args.replace(data_range='2-3', data_train=['Sample']), 'DIV2K',
                             train=False).image_names == ['0002', '0003']


def test_div2k_errors_name_the_path_and_flag(tmp_path):
    with pytest.raises(utility.UserError) as e:
        data.make_dataset(parse('--dir_data', str(tmp_path)), 'DIV2K', train=True)
    assert str(tmp_path / 'DIV2K' / 'DIV2K_train_HR') in str(e.value)
    assert '--dir_data' in str(e.value)
    make_div2k(tmp_path)
    with pytest.raises(utility.UserError, match='--data_range'):
        data.make_dataset(parse('--dir_data', str(tmp_path), '--data_range', '1-x'), 'DIV2K',
                          train=True)
    with pytest.raises(utility.UserError, match='no HR image'):
        data.make_dataset(parse('--dir_data', str(tmp_path), '--data_range', '10-20'), 'DIV2K',
                          train=True)


def test_sep_caches_decoded_images_as_npy_and_reset_rebuilds(tmp_path, cache_in_tmp):
    make_div2k(tmp_path)
    args = parse('--dir_data', str(tmp_path), '--data_range', '1-3/4-5', '--scale', '2',
                 '--ext', 'sep')
    ds = data.make_dataset(args, 'DIV2K', train=True)
    lr, hr, _ = ds[0]
    files = sorted((cache_in_tmp / 'sep').rglob('*.npy'))
    assert [f.name.split('_')[0] for f in files] == ['0001', '0001x2']
    hr_cached = next(f for f in files if f.name.startswith('0001_'))
    assert np.array_equal(np.load(hr_cached, allow_pickle=False).transpose(2, 0, 1), hr.numpy())
    # The cache is what is read: a marked cache file shows up in the next item.
    np.save(hr_cached, np.zeros((24, 28, 3), np.uint8), allow_pickle=False)
    assert ds[0][1].sum() == 0
    ds = data.make_dataset(args.replace(ext='sep+reset'), 'DIV2K', train=True)
    assert not list((cache_in_tmp / 'sep').rglob('*.npy'))
    assert torch.equal(ds[0][1], hr)
    ds_img = data.make_dataset(args.replace(ext='img'), 'DIV2K', train=True)
    assert torch.equal(ds_img[0][1], hr)


# -- Demo and Sample --------------------------------------------------------------------------

def test_demo_yields_every_image_without_hr(tmp_path):
    save(tmp_path / 'demo' / 'b.png', photo(10, 12, 0))
    save(tmp_path / 'demo' / 'a.png', photo(9, 7, 1, c=1))
    (tmp_path / 'demo' / 'notes.txt').write_text('not an image')
    args = parse('--dir_demo', str(tmp_path / 'demo'), '--data_test', 'Demo', '--test_only',
                 '--scale', '4')
    loader = data.Data(args).loader_test[0]
    items = list(loader)
    assert [n for _, _, (n,) in items] == ['a', 'b']
    lr, hr, _ = items[0]
    assert lr.shape == (1, 3, 9, 7) and hr.numel() == 0
    assert loader.dataset.benchmark is False
    with pytest.raises(utility.UserError, match='training'):
        data.make_dataset(args, 'Demo', train=True)
    with pytest.raises(utility.UserError, match='--dir_demo'):
        data.make_dataset(args.replace(dir_demo=str(tmp_path / 'none')), 'Demo', train=False)


def test_sample_trains_without_data_on_disk():
    photos = sample.load_photos()
    assert len(photos) >= 5 and {'astronaut', 'camera', 'coffee'} <= {n for n, _ in photos}
    args = parse('--data_train', 'Sample', '--data_test', 'Sample', '--scale', '4',
                 '--patch_size', '48', '--batch_size', '3', '--test_every', '2')
    d = data.Data(args)
    d.set_epoch(0)
    batches = list(d.loader_train)
    assert len(batches) == 2
    lr, hr, names, idx_scale = batches[0]
    assert idx_scale == 0
    assert lr.shape == (3, 3, 12, 12) and hr.shape == (3, 3, 48, 48) and len(names) == 3
    assert float(hr.max()) <= 255 and torch.equal(hr, hr.round())
    lr, hr, (name,) = next(iter(d.loader_test[0]))
    assert name == photos[0][0] and hr.shape[-1] == 4 * lr.shape[-1]


# -- training batches -------------------------------------------------------------------------

def train_args(tmp_path, *flags):
    make_benchmark(tmp_path, sizes=((40, 44), (36, 48), (44, 40)))
    return parse('--dir_data', str(tmp_path), '--data_train', 'MyBench', '--data_test',
                 'MyBench', '--patch_size', '12', '--batch_size', '4', '--test_every', '3',
                 '--ext', 'img', *flags)


def epoch_batches(d, epoch):
    d.set_epoch(epoch)
    batches = list(d.loader_train)
    assert all(isinstance(b[3], int) for b in batches)
    return batches


def same(a, b):
    return all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) and x[2:] == y[2:]
               for x, y in zip(a, b)) and len(a) == len(b)


def test_set_epoch_makes_batches_reproducible_whatever_the_workers(tmp_path):
    args = train_args(tmp_path, '--scale', '2')
    d0 = data.Data(args)
    first = epoch_batches(d0, 3)
    epoch_batches(d0, 4)
    assert same(first, epoch_batches(d0, 3))
    assert not same(first, epoch_batches(d0, 4))
    workers = epoch_batches(data.Data(args.replace(n_threads=2)), 3)
    assert same(first, workers)


def test_ranks_get_disjoint_halves_of_the_global_batch(tmp_path):
    args = train_args(tmp_path, '--scale', '2')
    whole = epoch_batches(data.Data(args), 1)
    rank0 = epoch_batches(data.Data(args, rank=0, world_size=2), 1)
    rank1 = epoch_batches(data.Data(args, rank=1, world_size=2), 1)
    for w, a, b in zip(whole, rank0, rank1):
        assert a[1].shape[0] == b[1].shape[0] == 2
        assert torch.equal(torch.cat([a[1], b[1]]), w[1])
        assert a[2] + b[2] == w[2]
    with pytest.raises(utility.UserError, match='--batch_size'):
        data.Data(args, rank=0, world_size=8)


def test_patches_are_aligned_crops(tmp_path):
    args = train_args(tmp_path, '--scale', '2', '--no_augment')
    d = data.Data(args)
    ds = d.loader_test[0].dataset
    full = {name: ds[i] for i, name in enumerate(ds.image_names)}
    for lr, hr, names, _ in epoch_batches(d, 0):
        assert lr.shape == (4, 3, 6, 6) and hr.shape == (4, 3, 12, 12)
        for k, name in enumerate(names):
            lr_img, hr_img, _ = full[name]
            hits = [(y, x) for y in range(lr_img.shape[1] - 5) for x in range(lr_img.shape[2] - 5)
                    if torch.equal(lr_img[:, y:y + 6, x:x + 6], lr[k])]
            assert any(torch.equal(hr_img[:, 2 * y:2 * y + 12, 2 * x:2 * x + 12], hr[k])
                       for y, x in hits)


def _dihedral(img, hflip, vflip, rot):
    """The flips/transpose of a [C, H, W] tensor, in the order the data code applies them."""
    if hflip:
        img = img.flip(-1)
    if vflip:
        img = img.flip(-2)
    if rot:
        img = img.transpose(-1, -2)
    return img


def test_augmentation_transforms_lr_and_hr_alike(tmp_path):
    args = train_args(tmp_path, '--scale', '2')
    plain = data.make_dataset(args.replace(no_augment=True), 'MyBench', train=True)
    augmented = data.make_dataset(args, 'MyBench', train=True)
    used = set()
    for k in range(24):
        seed = (1, 0, 2, k)
        lr, hr, _, _ = augmented.train_item(k % 3, seed, 0)
        lr0, hr0, _, _ = plain.train_item(k % 3, seed, 0)     # same crop, no transform
        match = [t for t in np.ndindex(2, 2, 2)
                 if torch.equal(_dihedral(hr0, *t), hr) and torch.equal(_dihedral(lr0, *t), lr)]
        assert match, k
        used.add(match[0])
    assert len(used) >= 4
    again = augmented.train_item(0, (1, 0, 2, 5), 0)
    assert torch.equal(again[0], augmented.train_item(0, (1, 0, 2, 5), 0)[0])


def test_multi_scale_batches_have_one_scale_each_and_it_is_exposed(tmp_path):
    args = train_args(tmp_path, '--scale', '2+3+4', '--test_every', '12', '--patch_size', '6')
    d = data.Data(args)
    batches = epoch_batches(d, 2)
    expected = d.scale_indices(2)
    assert [b[3] for b in batches] == list(expected)
    assert len(set(expected)) > 1
    for lr, hr, _, idx in batches:
        s = args.scale[idx]                 # EDSR's multi-scale rule: LR patch = patch_size
        assert lr.shape[-2:] == (6, 6) and hr.shape[-2:] == (6 * s, 6 * s)
    assert same(batches, epoch_batches(d, 2))


def test_patch_larger_than_image_is_a_user_error(tmp_path):
    args = train_args(tmp_path, '--scale', '2', '--patch_size', '96')
    with pytest.raises(utility.UserError, match='--patch_size'):    # when the set is opened
        data.Data(args)
    ds = data.make_dataset(args, 'MyBench', train=True)
    with pytest.raises(utility.UserError, match='--patch_size'):    # and when drawn
        ds.train_item(0, 0, 0)


def test_one_pixel_lr_patches_survive_flips(tmp_path):
    # Flipped 1-pixel patches keep negative strides in numpy, which torch refuses.
    d = data.Data(train_args(tmp_path, '--patch_size', '2', '--scale', '2'))
    for lr, hr, _, _ in epoch_batches(d, 1):
        assert lr.shape[-2:] == (1, 1) and hr.shape[-2:] == (2, 2)
