"""A GAN + SSL fine-tuning run through the CLI: trains, checkpoints and resumes exactly."""
import pytest
import torch

from cli import assert_user_error, run_main
from test_train import load


def gan_args(data_dir, vgg, save, epochs, *extra):
    return ['--template', 'ESRGAN_SSL', '--n_rrdb', '1', '--n_feats', '8', '--rrdb_growth', '4',
            '--scale', '2', '--data_train', 'Sample', '--data_test', 'Tiny',
            '--dir_data', data_dir, '--patch_size', '32', '--batch_size', '2',
            '--test_every', '2', '--epochs', epochs, '--decay', '1', '--ssl_search', '11',
            '--ssl_window', '5', '--ssl_stride', '1', '--ema_decay', '0.9',
            '--vgg_weights', vgg, '--n_threads', '0', '--save', save,
            # the recipe's VGG128 takes 128x128 patches only; 'vgg' takes these small ones
            '--discriminator', 'vgg', *extra]


@pytest.mark.slow
def test_gan_ssl_run_resumes_exactly(tmp_path, tiny_data, vgg_file):
    exp = tmp_path / 'exp'
    full = run_main(gan_args(tiny_data, vgg_file, 'full', 2), exp_root=exp)
    assert full.returncode == 0, full.stderr[-3000:]
    for term in ('L1', 'VGG54', 'RGAN', 'SSL'):
        assert f'{term}:' in full.stdout
        assert (exp / 'full' / f'loss_{term}.png').is_file()
    part = run_main(gan_args(tiny_data, vgg_file, 'part', 1), exp_root=exp)
    assert part.returncode == 0, part.stderr[-3000:]
    resumed = run_main(gan_args(tiny_data, vgg_file, 'x', 2, '--load', 'part'), exp_root=exp)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    for name in ('model_latest', 'model_ema'):
        a = load(exp / 'full' / 'model' / f'{name}.pt')
        b = load(exp / 'part' / 'model' / f'{name}.pt')
        for k in a:
            assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6), (name, k)
    da, db = load(exp / 'full' / 'checkpoint.pt')['loss'], load(exp / 'part' / 'checkpoint.pt')['loss']
    d_keys = [k for k in da if 'discriminator' in k or k.endswith('_extra_state')]
    assert d_keys, list(da)
    for k in d_keys:
        if torch.is_tensor(da[k]):
            assert torch.allclose(da[k].float(), db[k].float(), rtol=1e-5, atol=1e-6), k


def test_missing_vgg_weights_is_a_user_error(tmp_path, tiny_data):
    proc = run_main(gan_args(tiny_data, tmp_path / 'nope.pth', 'run', 1), exp_root=tmp_path)
    assert_user_error(proc, 'nope.pth', '--vgg_weights')
