"""Mistakes a new user makes (issue 26), each refused through the real CLI with one line.

Training on the test images, an image smaller than the training patch, a web page saved
under a weights file's name, and the VGG19 file looked up where torchvision keeps it.
"""
import numpy as np
import pytest
import torch
from PIL import Image

import option
import utility
from cli import assert_user_error, run_main
from conftest import TINY
from loss import _vgg, vgg54
from vgg_weights import random_vgg19_state

HTML = (b'<!DOCTYPE html>\n<html lang="en"><head><title>Sign in</title></head>'
        b'<body>Please sign in to download this file.</body></html>\n')


def _photo(path, w, h, seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def _train(data_dir, *flags):
    return [*TINY, '--scale', '2', '--dir_data', data_dir, '--patch_size', '16',
            '--batch_size', '1', '--test_every', '1', '--epochs', '1', *flags]


# -- item 2: training on the test images ---------------------------------------------------

def test_training_on_the_test_set_is_refused(tmp_path, tiny_data):
    proc = run_main(_train(tiny_data, '--data_train', 'Tiny', '--data_test', 'Tiny',
                           '--save', 'same'), exp_root=tmp_path)
    assert_user_error(proc, '--data_train and --data_test both name Tiny', 'Tiny_train/HR',
                      '--data_train Tiny_train --data_test Tiny_test')
    assert not (tmp_path / 'same').exists()


def test_one_of_several_sets_in_both_lists_is_refused(tmp_path, tiny_data):
    proc = run_main(_train(tiny_data, '--data_train', 'Sample+Tiny', '--data_test', 'Set5+tiny',
                           '--save', 'same'), exp_root=tmp_path)
    assert_user_error(proc, 'both name tiny')


# -- item 6: an image smaller than the patch, found when the training set is opened --------

@pytest.mark.parametrize('scale, patch, fits', [('2', '48', '--patch_size 20 or less'),
                                                ('2+3', '8', '--patch_size 6 or less')])
def test_small_training_image_is_refused_before_the_run_starts(tmp_path, tiny_data, scale,
                                                               patch, fits):
    data_dir = tmp_path / 'data'
    for k in range(6):       # rarely drawn in one batch: found only if every size is checked
        _photo(data_dir / 'benchmark' / 'Mine' / 'HR' / f'big{k}.png', 64, 64, k)
    _photo(data_dir / 'benchmark' / 'Mine' / 'HR' / 'small.png', 24, 20)
    (data_dir / 'benchmark' / 'Tiny').symlink_to(tiny_data / 'benchmark' / 'Tiny')
    proc = run_main([*TINY, '--scale', scale, '--patch_size', patch, '--dir_data', data_dir,
                     '--data_train', 'Mine', '--data_test', 'Tiny', '--batch_size', '1',
                     '--test_every', '1', '--epochs', '1', '--save', 'small'],
                    exp_root=tmp_path / 'exp')
    assert_user_error(proc, 'Mine/small: HR image 24x20 is smaller than the HR training patch',
                      fits)
    assert not (tmp_path / 'exp' / 'small').exists()


def test_training_set_with_every_image_large_enough_passes_the_check(tmp_path):
    import data
    for k, (w, h) in enumerate(((16, 40), (40, 17))):
        _photo(tmp_path / 'benchmark' / 'Mine' / 'HR' / f'im{k}.png', w, h, k)
    args = option.parse_args(['--dir_data', str(tmp_path), '--scale', '2', '--patch_size', '17',
                              '--ext', 'img'])        # HR patch 16: both images hold it
    data.make_dataset(args, 'Mine', train=True).check_patch_fits()
    with pytest.raises(utility.UserError, match='im0: HR image 16x40'):
        data.make_dataset(args.replace(patch_size=18), 'Mine', train=True).check_patch_fits()


# -- item 5: a web page saved as .pt / .pth ------------------------------------------------

def test_web_page_saved_as_weights_is_called_a_web_page(tmp_path):
    page = tmp_path / 'edsr_x2.pt'
    page.write_bytes(HTML)
    proc = run_main([*TINY, '--scale', '2', '--pre_train', page, '--test_only',
                     '--save', 'page'], exp_root=tmp_path / 'exp')
    line = assert_user_error(proc, str(page), 'is not a torch file', 'looks like a web page')
    assert 'pickled' not in line


def test_web_page_as_a_backbone_file_and_real_files_still_load(tmp_path, monkeypatch):
    checkpoints = tmp_path / 'hub' / 'checkpoints'
    checkpoints.mkdir(parents=True)
    (checkpoints / 'vgg19-dcbb9e9d.pth').write_bytes(b'\n  ' + HTML.lower())
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with pytest.raises(utility.UserError, match='looks like a web page'):
        _vgg.load_vgg19_state('')
    real = tmp_path / 'real.pt'
    torch.save({'w': torch.ones(2)}, real)
    assert torch.equal(utility.load_pt(real)['w'], torch.ones(2))
    legacy = tmp_path / 'legacy.pt'
    torch.save({'w': torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(utility.load_pt(legacy)['w'], torch.ones(2))
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a torch file')
    with pytest.raises(utility.UserError, match='truncated or not a torch file'):
        utility.load_pt(garbage)


# -- item 8: VGG19 from torch hub's checkpoints folder -------------------------------------

def test_vgg19_is_read_from_torch_hub_without_the_flag(tmp_path, monkeypatch, vgg_file):
    checkpoints = tmp_path / 'hub' / 'checkpoints'
    checkpoints.mkdir(parents=True)
    torch.save(random_vgg19_state(seed=3), checkpoints / 'vgg19-dcbb9e9d.pth')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    from_hub = vgg54.make_loss(option.parse_args(['--loss', '1*VGG54']))
    given = vgg54.make_loss(option.parse_args(['--loss', '1*VGG54', '--vgg_weights',
                                               str(checkpoints / 'vgg19-dcbb9e9d.pth')]))
    other = vgg54.make_loss(option.parse_args(['--loss', '1*VGG54', '--vgg_weights',
                                               str(vgg_file)]))          # seed 0: the flag wins
    for a, b, c in zip(from_hub.vgg.features, given.vgg.features, other.vgg.features):
        if hasattr(a, 'weight'):
            assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)


def test_missing_vgg19_names_the_hub_folder_and_the_flag(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    proc = run_main(_train(tiny_data, '--data_train', 'Sample', '--data_test', 'Tiny',
                           '--loss', '1*L1+1*VGG22', '--save', 'vgg'), exp_root=tmp_path / 'exp')
    assert_user_error(proc, 'VGG22/VGG54/PERCEPTUAL needs vgg19-dcbb9e9d.pth',
                      str(tmp_path / 'torch_home' / 'hub' / 'checkpoints'),
                      'give its path with --vgg_weights')
