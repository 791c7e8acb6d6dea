"""inspect_ssl.py: the heatmaps are the op's graph rows, the shares sum to the SSL value."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cli import REPO, assert_user_error

import inspect_ssl
from loss.ssl import SSL, edge_mask
from loss.ssl_cuda import graph, patch_distances

BUTTERFLY = REPO / 'dataset' / 'benchmark' / 'Set5' / 'HR' / 'butterfly.png'
SCRIPT = REPO / 'src' / 'inspect_ssl.py'


def _opts(*argv):
    return inspect_ssl.build_parser().parse_args(['--hr', 'x', '--out', 'y', *argv])


@pytest.fixture(scope='module')
def crop(tmp_path_factory):
    """A 64x64 butterfly crop (HR) and a blurred, noisy copy of it (SR), as PNG files."""
    root = tmp_path_factory.mktemp('inspect')
    hr = np.asarray(Image.open(BUTTERFLY).convert('RGB'))[96:160, 64:128]
    rng = np.random.default_rng(0)
    blur = hr.astype(np.float64)
    blur = (blur + np.roll(blur, 1, 0) + np.roll(blur, 1, 1) + np.roll(blur, (1, 1), (0, 1))) / 4
    sr = np.clip(blur + rng.normal(0, 3, hr.shape), 0, 255).round().astype(np.uint8)
    Image.fromarray(hr).save(root / 'hr.png')
    Image.fromarray(sr).save(root / 'sr.png')
    return root


def test_heatmaps_are_the_graph_rows_of_the_op(crop):
    opts = _opts('--ssl_search', '11', '--ssl_window', '5', '--ssl_stride', '2')
    hr, sr, note = inspect_ssl.load_pair(crop / 'hr.png', crop / 'sr.png', 2, 255)
    assert note == 'SR: sr.png'
    result = inspect_ssl.analyse(hr, sr, opts)
    assert len(result['pixels']) == 3 and all(p['masked'] for p in result['pixels'])

    # The graphs of every masked pixel, as the loss computes them: one op call per image.
    mask = edge_mask(hr, 255, 20.0, 2)
    rows = [tuple(p) for p in torch.nonzero(mask[0, 0]).tolist()]
    g_hr = graph(patch_distances(hr / 255, mask, 11, 5), 3, 5, 0.004, True)
    g_sr = graph(patch_distances(sr / 255, mask, 11, 5), 3, 5, 0.004, True)
    fig = inspect_ssl.make_figure(hr / 255, result, 'test')
    axes = fig.get_axes()
    for k, px in enumerate(result['pixels']):
        i = rows.index((px['y'], px['x']))
        want_hr = g_hr[i].view(11, 11).double().numpy()
        want_sr = g_sr[i].view(11, 11).double().numpy()
        np.testing.assert_allclose(px['hr_graph'], want_hr, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(px['sr_graph'], want_sr, rtol=1e-5, atol=1e-9)
        # What the figure draws: HR graph, SR graph and their difference (panels of row k).
        shown = [a.images[0].get_array() for a in axes
                 if a.get_title().startswith(('HR graph', 'SR graph', 'SR - HR'))
                 and f'#{k + 1}' in a.get_title()]
        np.testing.assert_allclose(shown[0], want_hr, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(shown[1], want_sr, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(shown[2], want_sr - want_hr, rtol=1e-4, atol=1e-8)
        # The search square is the HR image around the pixel.
        y, x = px['y'], px['x']
        if 5 <= y < 59 and 5 <= x < 59:
            np.testing.assert_allclose(px['square'], hr[0, :, y - 5:y + 6, x - 5:x + 6]
                                       .permute(1, 2, 0).numpy() / 255, atol=1e-7)

    # The per-pixel shares are the SSL loss split by pixel: they sum to the module's value.
    loss = SSL(search=11, window=5, stride=2)(sr, hr).item()
    assert np.isfinite(result['contrib'][result['mask']]).all()
    assert np.isnan(result['contrib'][~result['mask']]).all()
    assert result['loss'] == pytest.approx(loss, rel=1e-4)
    assert np.nansum(result['contrib']) == pytest.approx(loss, rel=1e-4)


def test_chosen_pixels_follow_the_edge_response(crop):
    opts = _opts('--ssl_search', '11', '--ssl_window', '5')
    hr, sr, _ = inspect_ssl.load_pair(crop / 'hr.png', crop / 'sr.png', 2, 255)
    result = inspect_ssl.analyse(hr, sr, opts)
    top = result['response'][result['mask']].max()
    picked = [(p['y'], p['x']) for p in result['pixels']]
    assert result['response'][picked[0]] == top
    for a in range(len(picked)):
        for b in range(a):
            assert max(abs(picked[a][0] - picked[b][0]), abs(picked[a][1] - picked[b][1])) >= 11


def _run(*argv):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, argv)], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_cli_without_sr_uses_bicubic_and_refuses_bad_pixels(crop, tmp_path):
    out = tmp_path / 'fig.png'
    proc = _run('--hr', crop / 'hr.png', '--pixel', '30,30', '2,60', '--ssl_search', '11',
                '--ssl_window', '5', '--out', out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with Image.open(out) as im:
        assert im.size[0] > 500
    assert 'masked pixels' in proc.stdout
    bad = _run('--hr', crop / 'hr.png', '--pixel', '70,3', '--out', tmp_path / 'x.png')
    assert_user_error(bad, '--pixel 70,3', 'outside')
    assert not (tmp_path / 'x.png').exists()
    missing = _run('--hr', tmp_path / 'none.png', '--out', tmp_path / 'x.png')
    assert_user_error(missing, 'none.png')
    flag = _run('--hr', crop / 'hr.png', '--out', out, '--ssl_window', '4')
    assert_user_error(flag, '--ssl_window')


def test_bicubic_stand_in_is_named_in_the_title(crop):
    hr, sr, note = inspect_ssl.load_pair(crop / 'hr.png', '', 2, 255)
    assert note == 'SR: bicubic x2 down-up of HR (no --sr given)'
    assert hr.shape == sr.shape == (1, 3, 64, 64)
    assert 0 < (hr - sr).abs().mean() < 20


def test_share_panel_sums_blocks_and_symlog_ticks_keep_apart(crop):
    """The share panel shows block sums of the per-pixel shares (adding up to the loss, every
    masked pixel in its block), and the difference panels' colour-bar ticks sit at least a
    seventh of the bar apart (symlog's own ticks crowded around 0)."""
    from matplotlib.colors import SymLogNorm
    opts = _opts('--ssl_search', '11', '--ssl_window', '5', '--ssl_stride', '2')
    hr, sr, _ = inspect_ssl.load_pair(crop / 'hr.png', crop / 'sr.png', 2, 255)
    result = inspect_ssl.analyse(hr, sr, opts)
    sums, size = inspect_ssl.block_shares(result['contrib'])
    h, w = result['contrib'].shape
    assert size >= 4 and sums.shape == (-(-h // size), -(-w // size))
    assert sums.sum() == pytest.approx(result['loss'], rel=1e-6)
    ys, xs = np.nonzero(result['mask'])
    y, x = ys[0], xs[0]
    block = result['contrib'][y // size * size:(y // size + 1) * size,
                              x // size * size:(x // size + 1) * size]
    assert sums[y // size, x // size] == pytest.approx(np.nansum(block))

    fig = inspect_ssl.make_figure(hr / 255, result, 'test')
    panel = next(a for a in fig.get_axes() if a.get_title().startswith('where SSL sits'))
    np.testing.assert_allclose(panel.images[1].get_array().filled(0), sums)
    for lim in (1e-1, 3.7e-3, 2e-8):
        norm = SymLogNorm(lim / 100, vmin=-lim, vmax=lim)
        at = sorted(float(norm(t)) for t in inspect_ssl.symlog_ticks(lim))
        assert at[0] == pytest.approx(0) and at[-1] == pytest.approx(1)
        assert min(b - a for a, b in zip(at, at[1:])) > 0.15
    bars = [a for a in fig.get_axes() if a.get_label() == '<colorbar>']
    assert bars
