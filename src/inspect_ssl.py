"""Picture of what the self-similarity loss (SSL) sees on one image pair.

    python src/inspect_ssl.py --hr HR.png [--sr SR.png] [--pixel Y,X ...] --out fig.png

One figure: the HR image with its edge mask (at --ssl_stride) overlaid; a map of every
masked pixel's share of the SSL value; and for each chosen pixel (default: the three
strongest edge pixels, kept a search square apart) its HR search square, the HR graph and
the SR graph over that square as heatmaps, and their difference. The graphs are the op's
own output: ``loss.ssl_cuda.patch_distances`` then ``loss.ssl_cuda.graph``, with the SSL
flags of training (same names and defaults, taken from option.py). Without --sr the SR side
is HR bicubic-downscaled by --scale and upscaled back (MATLAB imresize), and the title
says so.
"""
import argparse
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import figures  # noqa: E402
import option  # noqa: E402
import utility  # noqa: E402

SSL_FLAGS = ('ssl_search', 'ssl_window', 'ssl_sigma', 'ssl_threshold', 'ssl_stride', 'ssl_kl',
             'ssl_no_norm', 'rgb_range')


def _pixel(text):
    try:
        y, x = (int(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected Y,X (row,column), got {text!r}') from None
    return y, x


def build_parser():
    p = option._Parser(prog='inspect_ssl.py', formatter_class=option._HelpFormatter,
                       description='Figure of the SSL edge mask, self-similarity graphs and '
                                   'per-pixel loss on one HR/SR pair.')
    p.add_argument('--hr', type=str, required=True, help='HR image (PNG, any size)')
    p.add_argument('--sr', type=str, default='',
                   help='SR image of the same size (e.g. results-Set5/<img>_x2_SR.png); '
                        'default: HR bicubic-downscaled by --scale and upscaled back')
    p.add_argument('--pixel', type=_pixel, nargs='+', default=None, metavar='Y,X',
                   help='pixels (row,column in HR pixels) whose graphs are shown; default: '
                        'the three strongest edge pixels of the mask')
    p.add_argument('--scale', type=option._positive_int, default=2,
                   help='scale of the bicubic down-up SR stand-in when --sr is not given')
    p.add_argument('--out', type=str, required=True, help='figure file (.png or .pdf)')
    # The SSL flags of training, with their names, checks, defaults and help.
    group = p.add_argument_group('SSL (as in training)')
    for action in option.build_parser()._actions:
        if action.dest in SSL_FLAGS:
            group._add_action(action)
    return p


# ---------------------------------------------------------------------------- computation
def load_pair(hr_path, sr_path, scale, rgb_range):
    """(hr, sr, note): float [1, 3, H, W] tensors in [0, rgb_range] and a line for the title.

    Without ``sr_path`` the SR side is the bicubic down-up of HR (HR cropped to a multiple of
    ``scale`` first, as the data pipeline does).
    """
    from data._image import read_image, set_channels, to_tensor
    hr = set_channels(read_image(hr_path), 3)
    if sr_path:
        sr = set_channels(read_image(sr_path), 3)
        if sr.shape != hr.shape:
            # SR images of a run are the HR size cropped to a multiple of the scale.
            dh, dw = hr.shape[0] - sr.shape[0], hr.shape[1] - sr.shape[1]
            if not (0 <= dh < 8 and 0 <= dw < 8):
                raise utility.UserError(
                    f'--sr {sr_path} is {sr.shape[1]}x{sr.shape[0]} but --hr {hr_path} is '
                    f'{hr.shape[1]}x{hr.shape[0]}; give the SR image made from this HR image')
            hr = hr[:sr.shape[0], :sr.shape[1]]
        note = f'SR: {os.path.basename(sr_path)}'
    else:
        from data._srdata import bicubic_lr, bicubic_up
        lr = bicubic_lr(hr, scale)
        sr = bicubic_up(lr, scale)
        hr = np.ascontiguousarray(hr[:sr.shape[0], :sr.shape[1]])
        note = f'SR: bicubic x{scale} down-up of HR (no --sr given)'
    return (to_tensor(hr, rgb_range)[None], to_tensor(sr, rgb_range)[None], note)


def _row_contributions(d_sr, d_hr, channels, window, sigma, normalize, kl):
    """Each masked pixel's share of the SSL value [N]: its row's terms of the two means.

    The SSL value is mean |S_sr - S_hr| + kl * mean(t (log t - log s)) over all N x K graph
    entries, so the shares sum to it.
    """
    from loss.ssl_cuda import graph
    s_sr = graph(d_sr, channels, window, sigma, normalize)
    s_hr = graph(d_hr, channels, window, sigma, normalize)
    terms = (s_sr - s_hr).abs()
    if kl:
        t = s_hr.clamp_min(1e-10)
        terms = terms + kl * t * (t.log() - s_sr.clamp_min(1e-10).log())
    return terms.sum(1) / terms.numel()


def strongest_pixels(response, mask, contrib, count, spacing):
    """Up to ``count`` masked pixels (y, x) of largest edge response (ties: larger SSL
    share), each at least ``spacing`` pixels (Chebyshev) from those already taken."""
    ys, xs = np.nonzero(mask)
    order = np.lexsort((-np.nan_to_num(contrib[ys, xs]), -response[ys, xs]))
    chosen = []
    for i in order:
        y, x = int(ys[i]), int(xs[i])
        if all(max(abs(y - cy), abs(x - cx)) >= spacing for cy, cx in chosen):
            chosen.append((y, x))
            if len(chosen) == count:
                break
    return chosen


def analyse(hr, sr, opts, pixels=None):
    """Everything the figure shows, from hr, sr [1, C, H, W] in [0, rgb_range].

    opts: an object with the SSL flags (``SSL_FLAGS``). pixels: [(y, x)] or None for the
    three strongest edge pixels. Returns a dict: mask bool [H, W], response int [H, W],
    contrib float [H, W] (each masked pixel's share of the SSL value, NaN elsewhere), loss
    (the SSL value, their sum), and pixels: a list of dicts y, x, masked, square (HR search
    square [S, S, C] in [0, 1], reflect-padded at the border), hr_graph and sr_graph
    ([S, S], the graph rows of that pixel).
    """
    from loss.ssl import edge_mask, edge_response
    from loss.ssl_cuda import graph, patch_distances
    import torch.nn.functional as F
    search, window = opts.ssl_search, opts.ssl_window
    if window > search:
        raise utility.UserError(f'--ssl_window {window} is larger than --ssl_search {search}; '
                                f'use --ssl_window <= --ssl_search')
    channels, h, w = hr.shape[1:]
    if min(h, w) < search // 2 + 1:
        raise utility.UserError(f'the image is {w}x{h}; SSL needs at least search//2+1 = '
                                f'{search // 2 + 1} pixels per side: use a smaller --ssl_search')
    rr = opts.rgb_range
    normalize = not opts.ssl_no_norm
    args = (channels, window, opts.ssl_sigma, normalize)
    mask = edge_mask(hr, rr, opts.ssl_threshold, opts.ssl_stride)
    response = edge_response(hr, rr)[0].numpy()
    a_hr, a_sr = hr / rr, sr / rr
    with torch.no_grad():
        d_hr = patch_distances(a_hr, mask, search, window)
        d_sr = patch_distances(a_sr, mask, search, window)
        contrib = np.full((h, w), np.nan)
        loss = 0.0
        if d_hr.shape[0]:
            share = _row_contributions(d_sr, d_hr, *args, opts.ssl_kl).double().numpy()
            ys, xs = torch.nonzero(mask[0, 0], as_tuple=True)
            contrib[ys.numpy(), xs.numpy()] = share
            loss = float(share.sum())
        mask_np = mask[0, 0].numpy()
        if pixels is None:
            pixels = strongest_pixels(response, mask_np, contrib, 3, search)
        for y, x in pixels:
            if not (0 <= y < h and 0 <= x < w):
                raise utility.UserError(f'--pixel {y},{x} lies outside the {w}x{h} image '
                                        f'(Y in 0..{h - 1}, X in 0..{w - 1})')
        pixels = list(dict.fromkeys(pixels))   # once each, in the order given
        chosen = []
        if pixels:
            one = torch.zeros_like(mask)
            for y, x in pixels:
                one[0, 0, y, x] = True
            rows = {(int(y), int(x)): i for i, (y, x) in
                    enumerate(torch.nonzero(one[0, 0]).tolist())}
            g_hr = graph(patch_distances(a_hr, one, search, window), *args)
            g_sr = graph(patch_distances(a_sr, one, search, window), *args)
            p = search // 2
            padded = F.pad(a_hr, (p, p, p, p), mode='reflect') if p else a_hr
            for y, x in pixels:
                i = rows[(y, x)]
                chosen.append({
                    'y': y, 'x': x, 'masked': bool(mask_np[y, x]),
                    'square': padded[0, :, y:y + search, x:x + search].permute(1, 2, 0).numpy(),
                    'hr_graph': g_hr[i].view(search, search).double().numpy(),
                    'sr_graph': g_sr[i].view(search, search).double().numpy(),
                })
    return {'mask': mask_np, 'response': response, 'contrib': contrib, 'loss': loss,
            'pixels': chosen, 'search': search, 'window': window}


# ---------------------------------------------------------------------------- figure
def block_shares(contrib, blocks_across=40):
    """(sums, size): the per-pixel shares [H, W] (NaN off the mask) summed over size x size
    blocks, so that the loss's location shows at the figure's scale; size is about 1/40 of the
    longer side, at least 4 pixels.  The sums add up to the loss."""
    h, w = contrib.shape
    size = max(4, int(round(max(h, w) / blocks_across)))
    ph, pw = -h % size, -w % size
    filled = np.pad(np.nan_to_num(contrib, nan=0.0), ((0, ph), (0, pw)))
    sums = filled.reshape((h + ph) // size, size, (w + pw) // size, size).sum(axis=(1, 3))
    return sums, size


def symlog_ticks(lim):
    """Colour-bar ticks of SymLogNorm(lim / 100, vmin=-lim, vmax=lim): 0, +-lim/10, +-lim."""
    return [-lim, -lim / 10, 0.0, lim / 10, lim]


def make_figure(hr, result, title):
    """matplotlib Figure (Agg) of ``analyse``'s result for hr [1, C, H, W] in [0, 1]."""
    from matplotlib.colors import PowerNorm, SymLogNorm
    from matplotlib.patches import Rectangle

    pixels = result['pixels']
    search, window = result['search'], result['window']
    image = hr[0].permute(1, 2, 0).clamp(0, 1).numpy()
    h, w = image.shape[:2]
    n = len(pixels)
    top = 6.0 * min(1.5, max(0.6, h / w))
    fig = figures.new_figure(figsize=(15, top + 3.2 * n + 0.6))
    grid = fig.add_gridspec(1 + n, 4, height_ratios=[top] + [3.0] * n)
    fig.suptitle(title, fontsize=11)

    ax = fig.add_subplot(grid[0, 0:2])
    ax.imshow(image, interpolation='nearest')
    overlay = np.zeros((h, w, 4))
    overlay[result['mask']] = (1.0, 0.1, 0.1, 0.85)
    ax.imshow(overlay, interpolation='nearest')
    p = search // 2
    for k, px in enumerate(pixels, 1):
        ax.add_patch(Rectangle((px['x'] - p - 0.5, px['y'] - p - 0.5), search, search,
                               fill=False, edgecolor='yellow', linewidth=1.2))
        ax.text(px['x'] - p, px['y'] - p - 2, str(k), color='yellow', fontsize=9,
                va='bottom')
    ax.set_title(f'HR with edge mask (red, {int(result["mask"].sum())} pixels); '
                 f'yellow: search squares', fontsize=9)
    ax.set_axis_off()

    ax = fig.add_subplot(grid[0, 2:4])
    ax.imshow(image.mean(2), cmap='gray', vmin=0, vmax=1, interpolation='nearest')
    blocks, size = block_shares(result['contrib'])
    shown = np.ma.masked_less_equal(blocks, 0)
    if shown.count():
        # Square-root colours from 0: the blocks that hold most of the loss stand out, and
        # small shares stay visible (a linear scale left them black, a log scale made every
        # edge look alike).
        norm = PowerNorm(0.5, vmin=0, vmax=float(shown.max()))
        im = ax.imshow(shown, cmap='plasma', norm=norm, alpha=0.9, interpolation='nearest',
                       extent=(-0.5, blocks.shape[1] * size - 0.5,
                               blocks.shape[0] * size - 0.5, -0.5))
        bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, format='%.1e')
        bar.ax.tick_params(labelsize=7)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_title(f'where SSL sits: each {size}x{size} block\'s share (colour ~ sqrt)\nblocks sum '
                 f'to the loss, {result["loss"]:.4g}; uncoloured: no masked pixel', fontsize=9)
    ax.set_axis_off()

    for k, px in enumerate(pixels, 1):
        where = f'#{k} y={px["y"]} x={px["x"]}{"" if px["masked"] else " (not masked)"}'
        ax = fig.add_subplot(grid[k, 0])
        ax.imshow(px['square'].clip(0, 1), interpolation='nearest')
        q = (search - window) // 2
        ax.add_patch(Rectangle((q - 0.5, q - 0.5), window, window, fill=False,
                               edgecolor='yellow', linewidth=1))
        ax.set_title(f'{where}: HR square, window', fontsize=8)
        ax.set_axis_off()
        vmax = max(px['hr_graph'].max(), px['sr_graph'].max())
        for col, key, name in ((1, 'hr_graph', 'HR graph'), (2, 'sr_graph', 'SR graph')):
            ax = fig.add_subplot(grid[k, col])
            # A power scale: the centre (the patch itself) would otherwise hide the rest.
            im = ax.imshow(px[key], cmap='viridis', norm=PowerNorm(0.4, vmin=0, vmax=vmax),
                           interpolation='nearest')
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            ax.set_title(f'{name} #{k} (colour ~ value^0.4)', fontsize=8)
            ax.set_axis_off()
        diff = px['sr_graph'] - px['hr_graph']
        lim = max(float(np.abs(diff).max()), 1e-12)
        ax = fig.add_subplot(grid[k, 3])
        im = ax.imshow(diff, cmap='RdBu_r', norm=SymLogNorm(lim / 100, vmin=-lim, vmax=lim),
                       interpolation='nearest')
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        # Symlog's default ticks crowd around 0 (+-lim/100 and the decades next to it); one
        # tick per decade from the linear range out (a sixth of the bar or more apart) does not.
        ticks = symlog_ticks(lim)
        bar.set_ticks(ticks)
        bar.set_ticklabels([f'{t:.2g}' for t in ticks])
        bar.ax.tick_params(labelsize=7)
        ax.set_title(f'SR - HR graph #{k} (symlog colour; sum |diff| = {np.abs(diff).sum():.3g})',
                     fontsize=8)
        ax.set_axis_off()
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def run(argv=None):
    opts = build_parser().parse_args(argv)
    figures.check_path(opts.out)
    hr, sr, note = load_pair(opts.hr, opts.sr, opts.scale, opts.rgb_range)
    result = analyse(hr, sr, opts, opts.pixel)
    title = (f'SSL on {os.path.basename(opts.hr)} ({note}); search {opts.ssl_search}, window '
             f'{opts.ssl_window}, sigma {opts.ssl_sigma:g}, threshold {opts.ssl_threshold:g}, '
             f'stride {opts.ssl_stride}, kl {opts.ssl_kl:g}'
             f'{", no row norm" if opts.ssl_no_norm else ""}')
    fig = make_figure(hr / opts.rgb_range, result, title)
    figures.save(fig, opts.out)
    print(f'wrote {opts.out}: {int(result["mask"].sum())} masked pixels, SSL {result["loss"]:.5g}')
    return 0


def main(argv=None):
    return utility.run_cli(run, 'inspect_ssl.py', argv)


if __name__ == '__main__':
    sys.exit(main())
