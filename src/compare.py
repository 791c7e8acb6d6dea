"""The classic SR comparison figure, from runs' saved results.

    python src/compare.py --runs RUN_A RUN_B ... --dataset Set14 --image barbara \\
        --box X,Y,W,H --out fig.png

Left: the HR image with the box drawn. Right: the box zoomed in the HR image, in the
bicubic baseline (MATLAB imresize of the LR image) and in each run's SR image
(``experiment/<run>/results-<dataset>/<image>_x<scale>_SR.png``, written by
``--save_results``), each labelled with its name and that image's metrics: for a run,
every metric column of its metrics.csv (psnr, ssim, and any other the run computed); for
bicubic, the scores of the evaluation (``evaluate.score_image``) computed here.

The runs must have been evaluated on the same LR images (``lr_set``: bicubic, or one degraded
set by its manifest digest); the bicubic panel then upscales those LR images.  The HR and LR
images come from ``--dir_data``, by default the one the first run was evaluated with (its
config.txt).
"""
import csv
import math
import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import figures  # noqa: E402
import lr_set  # noqa: E402
import option  # noqa: E402
import utility  # noqa: E402

# metrics.csv columns that name the row or its LR images; every other column is a metric.
KEY_COLUMNS = ('dataset', 'scale', 'image', *lr_set.FIELDS)


def _box(text):
    try:
        x, y, w, h = (int(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected X,Y,W,H (integers), got {text!r}') from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f'width and height must be > 0, got {text!r}')
    return x, y, w, h


def build_parser():
    p = option._Parser(prog='compare.py', formatter_class=option._HelpFormatter,
                       description='Zoomed crops of HR, bicubic and runs\' SR images with their '
                                   'per-image metrics.')
    p.add_argument('--runs', type=str, nargs='+', required=True,
                   help='run names in experiment/ (or run folders) evaluated with --save_results')
    p.add_argument('--dataset', type=str, default='Set5', help='test set name')
    p.add_argument('--image', type=str, required=True,
                   help='image name, e.g. baby (an image extension such as .png is dropped)')
    p.add_argument('--box', type=_box, required=True, metavar='X,Y,W,H',
                   help='crop in HR pixels: left, top, width, height')
    p.add_argument('--scale', type=option._positive_int, default=None,
                   help='scale of the results (default: the one scale the runs saved)')
    p.add_argument('--dir_data', type=str, default='',
                   help='dataset root holding benchmark/<dataset>/HR (the HR image and the LR '
                        'images); default: the --dir_data of the first run that names one '
                        '(its config.txt), else the bundled dataset/ folder')
    p.add_argument('--out', type=str, required=True, help='figure file (.png, .pdf or .svg)')
    return p


# ---------------------------------------------------------------------------- inputs
def run_dir(name):
    """experiment/<name>, or ``name`` itself when it is a folder path."""
    path = Path(name)
    if os.sep in name or '/' in name:
        folder = path
    else:
        folder = utility.EXPERIMENT_ROOT / name
    if not folder.is_dir():
        raise utility.UserError(f'run {name}: no folder {folder}; give a run name in '
                                f'{utility.EXPERIMENT_ROOT} or a run folder')
    return folder


def find_scale(folders, dataset, image, scale):
    """The scale to compare: ``scale`` or the single one every run saved for the image."""
    if scale is not None:
        return scale
    found = set()
    for folder in folders:
        for f in (folder / f'results-{dataset}').glob(f'{image}_x*_SR.png'):
            s = f.name[len(image) + 2:-len('_SR.png')]
            if s.isdigit():
                found.add(int(s))
    if not found:
        raise utility.UserError(
            f'no run has results-{dataset}/{image}_x<scale>_SR.png; evaluate the runs with '
            f'--save_results (and --data_test {dataset})')
    if len(found) > 1:
        raise utility.UserError(f'the runs saved {image} at scales '
                                f'{", ".join(map(str, sorted(found)))}; choose one with --scale')
    return found.pop()


def run_setting(folder, key):
    """The value of ``key`` in a run's config.txt (the last run of the folder), or None."""
    try:
        text = (Path(folder) / 'config.txt').read_text(encoding='utf-8', errors='replace')
    except OSError:
        return None
    found = None
    for line in text.splitlines():
        if line.startswith(f'{key}: '):
            found = line[len(key) + 2:]
    return found


def data_dir(opts, folders):
    """--dir_data, else the first run's own --dir_data that exists, else the bundled data."""
    if opts.dir_data:
        return opts.dir_data
    for folder in folders:
        value = run_setting(folder, 'dir_data')
        if value and Path(value).expanduser().is_dir():
            return str(Path(value).expanduser())
    return str(utility.DEFAULT_DATA_DIR)


def image_stem(name):
    """``--image`` without an image file extension ('108005.png' -> '108005')."""
    from data._image import is_image_file
    return Path(name).stem if is_image_file(Path(name)) else name


def read_metrics(folder, dataset, scale, image):
    """({metric: float}, LR set or None) of one image from a run's metrics.csv: every
    non-key column, and the LR images it was scored on (``lr_set.from_csv_row``)."""
    path = folder / 'metrics.csv'
    if not path.is_file():
        raise utility.UserError(f'run {folder.name} has no metrics.csv; evaluate it on '
                                f'{dataset} (it is written with the results)')
    with open(path, newline='', encoding='utf-8') as f:
        for row in csv.DictReader(f):
            if (row.get('dataset'), row.get('scale'), row.get('image')) == (dataset, str(scale),
                                                                             image):
                out = {}
                for key, value in row.items():
                    if key in KEY_COLUMNS or value in (None, ''):
                        continue
                    try:
                        out[key] = float(value)
                    except ValueError:
                        continue
                return out, lr_set.from_csv_row(row)
    raise utility.UserError(f'{path} has no row for {dataset} x{scale} {image}; evaluate the '
                            f'run on {dataset} at x{scale}')


def hr_image(dir_data, folders, dataset, image, scale):
    """uint8 [H, W, 3] HR image: the dataset's, else a run's saved HR (--save_gt)."""
    from data._image import read_image, set_channels
    hr_dir = Path(dir_data) / 'benchmark' / dataset / 'HR'
    candidates = sorted(hr_dir.glob(image + '.*')) if hr_dir.is_dir() else []
    candidates += [f / f'results-{dataset}' / f'{image}_x{scale}_HR.png' for f in folders]
    for path in candidates:
        if path.is_file():
            return set_channels(read_image(path), 3), path
    raise utility.UserError(f'no HR image for {dataset}/{image}: not in {hr_dir} and no run '
                            f'saved it (--save_gt); give the dataset root with --dir_data')


def bicubic(hr, dir_data, dataset, image, scale, lr=None):
    """uint8 [h*s, w*s, 3]: the LR image upscaled: of the degraded set ``lr`` (the runs' LR
    set, checked against the folder's manifest), else the LR_bicubic file or MATLAB bicubic
    of HR."""
    from data._image import read_image, set_channels
    from data._srdata import bicubic_lr, bicubic_up, lr_file
    folder = Path(dir_data) / 'benchmark' / dataset
    if lr is not None and lr['degradation'] != 'bicubic':
        lr_dir = folder / f'LR_{lr["degradation"]}' / f'X{scale}'
        here = lr_set.identity(folder, lr['degradation'], scale)
        path = lr_file(lr_dir, Path(image + '.png'), scale) if lr_dir.is_dir() else None
        if here != lr or path is None:
            found = lr_set.describe(here) if path is not None else f'no LR of {image}'
            raise utility.UserError(
                f'the runs were evaluated on {dataset} x{scale} LR images {lr_set.describe(lr)}, '
                f'but {lr_dir} holds {found}; give the --dir_data the runs used')
        return bicubic_up(set_channels(read_image(path), 3), scale)
    lr_dir = folder / 'LR_bicubic' / f'X{scale}'
    path = lr_file(lr_dir, Path(image + '.png'), scale) if lr_dir.is_dir() else None
    lr = set_channels(read_image(path), 3) if path is not None else bicubic_lr(hr, scale)
    return bicubic_up(lr, scale)


def bicubic_metrics(up, hr, scale, dataset, image):
    """The evaluation's scores (evaluate.score_image, default flags) of the bicubic image."""
    import torch

    from evaluate import score_image

    def t(a):
        return torch.from_numpy(a.transpose(2, 0, 1).copy()).float()[None]
    args = option.parse_args(['--scale', str(scale)])
    return score_image(t(up), t(hr), scale, args, True, f'{dataset}/{image}')


def collect(opts):
    """(hr, panels, scale): HR uint8 [H, W, 3] (cropped to the results' size) and a list of
    panels {'name', 'image' (uint8 [H, W, 3]), 'metrics' {name: float}}: HR, Bicubic, runs."""
    from data._image import read_image, set_channels
    folders = [run_dir(r) for r in opts.runs]
    image = image_stem(opts.image)
    dir_data = data_dir(opts, folders)
    scale = find_scale(folders, opts.dataset, image, opts.scale)
    srs = []
    for folder in folders:
        path = folder / f'results-{opts.dataset}' / f'{image}_x{scale}_SR.png'
        if not path.is_file():
            raise utility.UserError(f'run {folder.name} has no {path.relative_to(folder)}; '
                                    f'evaluate it with --save_results --data_test {opts.dataset} '
                                    f'--scale {scale}')
        srs.append((folder, set_channels(read_image(path), 3)))
    scored = [read_metrics(folder, opts.dataset, scale, image) for folder, _ in srs]
    lr_set.refuse_mixed([(folder.name, lr) for (folder, _), (_, lr) in zip(srs, scored)],
                        f'{opts.dataset} x{scale}')
    hr, _ = hr_image(dir_data, folders, opts.dataset, image, scale)
    h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    hr = np.ascontiguousarray(hr[:h, :w])
    up = bicubic(hr, dir_data, opts.dataset, image, scale, scored[0][1])
    panels = [{'name': 'HR', 'image': hr, 'metrics': {}},
              {'name': f'Bicubic x{scale}', 'image': up,
               'metrics': bicubic_metrics(up, hr, scale, opts.dataset, image)}]
    for (folder, sr), (metrics, _) in zip(srs, scored):
        if sr.shape != hr.shape:
            raise utility.UserError(f'run {folder.name}: its {image} SR image is '
                                    f'{sr.shape[1]}x{sr.shape[0]}, the HR image {w}x{h}; it was '
                                    f'made from another image')
        panels.append({'name': folder.name, 'image': sr, 'metrics': metrics})
    x, y, bw, bh = opts.box
    if x < 0 or y < 0 or x + bw > w or y + bh > h:
        raise utility.UserError(f'--box {x},{y},{bw},{bh} is outside the {w}x{h} image '
                                f'({opts.dataset}/{image} at x{scale}); keep X+W <= {w} and '
                                f'Y+H <= {h}')
    return hr, panels, scale


def format_metrics(values):
    """'PSNR 33.12 dB  SSIM 0.9123  LPIPS 0.1234': PSNR with 2 decimals, others with 4."""
    parts = []
    for key, v in values.items():
        if not math.isfinite(v):
            parts.append(f'{key.upper()} {v}')
        elif key == 'psnr':
            parts.append(f'PSNR {v:.2f} dB')
        else:
            parts.append(f'{key.upper()} {v:.4f}')
    return '  '.join(parts)


# ---------------------------------------------------------------------------- figure
def make_figure(hr, panels, box, title):
    """Figure: HR with the box, then each panel's crop labelled with name and metrics."""
    from matplotlib.patches import Rectangle

    x, y, bw, bh = box
    n = len(panels)
    cols = n if n <= 2 else math.ceil(n / 2)   # two rows of crops beside a square HR
    rows = math.ceil(n / cols)
    aspect = bh / bw
    cell = 3.0
    hr_w = 2.2 * cell
    fig = figures.new_figure(figsize=(hr_w + cols * cell, max(hr_w * hr.shape[0] / hr.shape[1],
                                                  rows * (cell * aspect + 0.8)) + 0.6))
    grid = fig.add_gridspec(rows, 1 + cols, width_ratios=[hr_w] + [cell] * cols)
    fig.suptitle(title, fontsize=11)
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(hr, interpolation='nearest')
    ax.add_patch(Rectangle((x - 0.5, y - 0.5), bw, bh, fill=False, edgecolor='red',
                           linewidth=1.5))
    ax.set_title(f'HR, box {x},{y},{bw},{bh}', fontsize=9)
    ax.set_axis_off()
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(grid[i // cols, 1 + i % cols])
        ax.imshow(panel['image'][y:y + bh, x:x + bw], interpolation='nearest')
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(panel['name'], fontsize=9)
        ax.set_xlabel(format_metrics(panel['metrics']).replace('  ', '\n', 1), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def run(argv=None):
    opts = build_parser().parse_args(argv)
    figures.check_path(opts.out)
    hr, panels, scale = collect(opts)
    title = f'{opts.dataset} {image_stem(opts.image)} x{scale}'
    fig = make_figure(hr, panels, opts.box, title)
    figures.save(fig, opts.out)
    print(f'wrote {opts.out}: ' + '; '.join(
        f'{p["name"]} {format_metrics(p["metrics"])}' for p in panels[1:]))
    return 0


def main(argv=None):
    return utility.run_cli(run, 'compare.py', argv)


if __name__ == '__main__':
    sys.exit(main())
