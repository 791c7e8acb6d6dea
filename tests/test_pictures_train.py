"""--tensorboard and --save_maps in training runs through the real CLI."""
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from cli import assert_user_error, run_main
from conftest import TINY


def train_args(data_dir, save, epochs, *extra):
    return [*TINY, '--scale', '2', '--data_train', 'Sample', '--data_test', 'Tiny',
            '--dir_data', data_dir, '--patch_size', '32', '--batch_size', '4',
            '--test_every', '3', '--epochs', epochs, '--decay', '1', '--lr', '1e-3',
            '--loss', '1*L1+0.1*SSL+1*SPL', '--ssl_search', '11', '--ssl_window', '5',
            '--save', save, *extra]


def _scalars(folder):
    """{tag: [(step, value)]} as TensorBoard shows them (its EventAccumulator, purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder), size_guidance={'scalars': 0, 'images': 0})
    acc.Reload()
    out = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()['scalars']}
    images = {tag: [e.step for e in acc.Images(tag)] for tag in acc.Tags()['images']}
    return out, images


def _raw_steps(folder, tag):
    """Steps of ``tag`` in the event files as written (no purge applied)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    steps = []
    for path in sorted(folder.iterdir()):
        for event in EventFileLoader(str(path)).Load():
            if event.HasField('summary') and any(v.tag == tag for v in event.summary.value):
                steps.append(event.step)
    return steps


@pytest.mark.slow
def test_tensorboard_resume_has_each_step_once_and_maps(tmp_path, tiny_data):
    pytest.importorskip('torch.utils.tensorboard')
    exp = tmp_path / 'exp'
    flags = ('--tensorboard', '--save_maps')
    first = run_main(train_args(tiny_data, 'run', 2, *flags), exp_root=exp)
    assert first.returncode == 0, first.stderr[-3000:]
    run = exp / 'run'
    shutil.copy(run / 'checkpoint.pt', tmp_path / 'epoch2.pt')
    resumed = run_main(train_args(tiny_data, 'x', 3, '--load', 'run', *flags), exp_root=exp)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    scalars, images = _scalars(run / 'tb')
    ckpt = torch.load(run / 'checkpoint.pt', map_location='cpu', weights_only=True)
    history = ckpt['loss_log']['history']
    want = {f'loss/{k}' for k in ('L1', 'SSL', 'SPL', 'Total')} | {
        'lr', 'Tiny_x2/psnr', 'Tiny_x2/ssim'}
    assert set(scalars) == want
    for tag, points in scalars.items():
        assert [s for s, _ in points] == [1, 2, 3], tag
    for key, values in history.items():
        np.testing.assert_allclose([v for _, v in scalars[f'loss/{key}']], values, rtol=1e-6)
    hist = ckpt['metric_history']['Tiny']['x2']
    np.testing.assert_allclose([v for _, v in scalars['Tiny_x2/psnr']], hist['psnr'], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in scalars['lr']], [1e-3, 5e-4, 5e-4], rtol=1e-6)
    assert images == {'first_test/LR_SR_HR': [1, 2, 3]}

    # An interrupted epoch 3 (events written, checkpoint not): resuming from epoch 2 again
    # writes step 3 a second time; TensorBoard's reader keeps only the new one.
    shutil.copy(tmp_path / 'epoch2.pt', run / 'checkpoint.pt')
    again = run_main(train_args(tiny_data, 'x', 3, '--load', 'run', *flags), exp_root=exp)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _raw_steps(run / 'tb', 'lr') == [1, 2, 3, 3]
    scalars, images = _scalars(run / 'tb')
    for tag, points in scalars.items():
        assert [s for s, _ in points] == [1, 2, 3], tag
    assert images == {'first_test/LR_SR_HR': [1, 2, 3]}

    for epoch in (1, 2, 3):
        with Image.open(run / 'maps' / f'spl_{epoch}.png') as im:
            assert im.size[0] > 1000


def test_save_maps_needs_spl_and_tensorboard_needs_the_package(tmp_path, tiny_data):
    exp = tmp_path / 'exp'
    args = train_args(tiny_data, 'run', 1, '--save_maps')
    args[args.index('--loss') + 1] = '1*L1'
    assert_user_error(run_main(args, exp_root=exp), '--save_maps', 'SPL')
    # A Python that cannot import tensorboard (an import hook blocks it).
    hook = tmp_path / 'hook'
    hook.mkdir()
    (hook / 'sitecustomize.py').write_text(
        'import sys\n'
        'class _Block:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        '        if name.split(".")[0] == "tensorboard":\n'
        '            raise ImportError("No module named tensorboard")\n'
        'sys.meta_path.insert(0, _Block())\n')
    import os
    old = os.environ.get('PYTHONPATH')
    os.environ['PYTHONPATH'] = str(hook) + (os.pathsep + old if old else '')
    try:
        proc = run_main(train_args(tiny_data, 'run', 1, '--tensorboard'), exp_root=exp)
    finally:
        if old is None:
            del os.environ['PYTHONPATH']
        else:
            os.environ['PYTHONPATH'] = old
    assert_user_error(proc, 'pip install tensorboard')
    assert not (exp / 'run').exists()


def test_spl_map_is_the_curve_of_the_ssim_map():
    """The weight map equals PSPL's curve applied to the SSIM map, and the figure shows it."""
    import maps
    from loss.spl import SPL
    from cli import REPO
    hr = np.asarray(Image.open(REPO / 'dataset' / 'benchmark' / 'Set5' / 'HR' / 'bird.png')
                    .convert('RGB'))[:64, :64]
    hr = torch.from_numpy(hr.transpose(2, 0, 1).copy()).float()[None]
    sr = (hr + torch.randn(hr.shape, generator=torch.Generator().manual_seed(0)) * 20).clamp(0, 255)
    spl = SPL(alpha=0.5, beta=0.25, max_val=2.0)
    ssim, weights = maps.spl_maps(spl, sr, hr, 1.5)
    np.testing.assert_allclose(weights, maps.spl_curve(spl, 1.5, ssim), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights, spl.weights(sr, hr, 1.5)[0].double().numpy(), rtol=1e-6)
    assert spl.sigma(1.5) == 1.0
    assert maps.spl_curve(spl, 1.5, [-1.0, 0.0]) == pytest.approx([2.0, 2.0 * math.exp(-1)])
    fig = maps.spl_figure(spl, sr, hr, 1.5, 'test')
    shown = {a.get_title().split(' (')[0]: a for a in fig.get_axes() if a.images}
    np.testing.assert_allclose(shown['SPL weight'].images[0].get_array(), weights.mean(0),
                               rtol=1e-6)
    # the colours end at the map's largest weight, which the title gives beside spl_max
    largest = weights.mean(0).max()
    assert shown['SPL weight'].images[0].get_clim() == pytest.approx((0.0, largest), rel=1e-6)
    assert f'largest {largest:.3g}; spl_max 2' in shown['SPL weight'].get_title()
    np.testing.assert_allclose(shown['SSIM(HR, SR) per pixel'].images[0].get_array(),
                               ssim.mean(0), rtol=1e-6)
