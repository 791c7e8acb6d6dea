"""The BSRGAN degradation's strength: the project's (src/degradation/bsrgan.py) beside the
official function, over many HR crops and seeds.

    SSL_OFFICIAL=/path/to/SSL/GAN-Based-SR python bench/bsrgan_distribution.py --n 600

``SSL_OFFICIAL`` names the snapshot folder described in tests/reference/bsrgan_official.py
(OpenCV must be importable too); without it the script says so and exits with status 2.
The two cannot draw the same samples (the official code uses Python's and numpy's global
generators, the project its keyed ones), so the script compares distributions: for sample
i it cuts a ``--patch`` crop from the HR images (``--hr`` folders; position and image from a
fixed generator), degrades it with the official function (global generators seeded with i)
and with the project's (key i), and measures on each LR (8-bit, RGB):

* psnr: PSNR (dB) against the MATLAB-bicubic LR of the same crop;
* grad: mean |horizontal + vertical difference| relative to the bicubic LR's (blur < 1);
* hf: standard deviation of LR minus its 3x3 box mean, in 8-bit levels (noise, ringing);
* block: mean |step| across the 8x8 JPEG block borders over the mean |step| inside blocks.

It prints the 10/50/90 % quantiles and means of each side, and the two-sample
Kolmogorov-Smirnov statistic D with its p-value.  ``--preset generate`` compares the test-set
variant (utils_parameter_blindsr.py ``degradation_bsrgan_nocrop`` with the generate YAML's
ranges) instead of the training one.
"""
import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'src'))
sys.path.insert(0, str(ROOT / 'tests' / 'reference'))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import stats  # noqa: E402

import bsrgan_official  # noqa: E402
import degradation  # noqa: E402
import imresize  # noqa: E402
from degradation import bsrgan  # noqa: E402

GENERATE_OPT = {'sf': 4, 'add_blur_kernel_range': [0, 4], 'downsample2_resize_range': [0.75, 1.0],
                'add_gaussian_noise_range': [1, 10], 'add_jpeg_noise_range': [85, 95]}


def _images(folders):
    out = []
    for folder in folders:
        for p in sorted(Path(folder).glob('*.png')):
            out.append(np.asarray(Image.open(p).convert('RGB')))
    return out


def measures(lr, ref):
    """lr, ref uint8 [h, w, 3] -> dict of the four statistics."""
    a, b = lr.astype(np.float64), ref.astype(np.float64)
    mse = np.mean((a - b) ** 2)
    psnr = 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)

    def grad(x):
        return np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()
    pad = np.pad(a, ((1, 1), (1, 1), (0, 0)), mode='edge')
    box = sum(pad[i:i + a.shape[0], j:j + a.shape[1]] for i in range(3) for j in range(3)) / 9
    steps = np.abs(np.diff(a, axis=1)).mean(axis=(0, 2))       # step between column j and j+1
    border = steps[7::8].mean() if len(steps) > 8 else np.nan
    inside = np.delete(steps, np.arange(7, len(steps), 8)).mean()
    return {'psnr': psnr, 'grad': grad(a) / max(grad(b), 1e-9), 'hf': (a - box).std(),
            'block': border / max(inside, 1e-9)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=600, help='samples per side')
    p.add_argument('--patch', type=int, default=256, help='HR crop size (multiple of 4)')
    p.add_argument('--preset', choices=('train', 'generate'), default='train')
    p.add_argument('--hr', nargs='+', default=[str(ROOT / 'dataset' / 'benchmark' / 'Set5' / 'HR'),
                                               str(ROOT.parent / 'shared' / 'benchmark' / 'Set14'
                                                   / 'HR')])
    args = p.parse_args()
    official = bsrgan_official.load()
    if official is None:
        print('bsrgan_distribution.py: error: set SSL_OFFICIAL to the SSL snapshot\'s GAN-Based-SR '
              'folder and install OpenCV (see tests/reference/bsrgan_official.py)', file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    images = [im for im in _images([h for h in args.hr if os.path.isdir(h)])
              if min(im.shape[:2]) >= args.patch]
    if not images:
        print(f'bsrgan_distribution.py: error: no HR image of at least {args.patch} px in '
              f'{args.hr}', file=sys.stderr)
        return 2
    params = bsrgan.PARAMS if args.preset == 'train' else bsrgan.GENERATE
    ours_deg = bsrgan.BSRGAN(params, 4)
    pick = np.random.default_rng(12345)
    rows = {'official': [], 'project': []}
    seconds = {'official': 0.0, 'project': 0.0}
    for i in range(args.n):
        im = images[int(pick.integers(len(images)))]
        y = int(pick.integers(im.shape[0] - args.patch + 1))
        x = int(pick.integers(im.shape[1] - args.patch + 1))
        hr = im[y:y + args.patch, x:x + args.patch]
        hr_f = hr.astype(np.float32) / 255
        t = torch.from_numpy(hr_f.transpose(2, 0, 1).copy())[None]
        ref = imresize.imresize(t * 255, 0.25)
        ref = ref.round().clamp(0, 255)[0].permute(1, 2, 0).numpy().astype(np.uint8)
        random.seed(i)
        np.random.seed(i)
        t0 = time.perf_counter()
        if args.preset == 'train':
            lq, _ = official.blindsr.degradation_bsrgan(hr_f, 4, lq_patchsize=args.patch // 4)
        else:
            lq, _ = official.param_blindsr.degradation_bsrgan_nocrop(hr_f, GENERATE_OPT, 4,
                                                                     lq_patchsize=16)
        t1 = time.perf_counter()
        ours, _ = ours_deg(t, *degradation.test_keys(0, 4, f'sample{i}'))
        t2 = time.perf_counter()
        seconds['official'] += t1 - t0
        seconds['project'] += t2 - t1
        lq8 = np.clip((lq * 255).round(), 0, 255).astype(np.uint8)
        ours8 = (ours[0] * 255).round().clamp(0, 255).permute(1, 2, 0).numpy().astype(np.uint8)
        rows['official'].append(measures(lq8, ref))
        rows['project'].append(measures(ours8, ref))
    print(f'BSRGAN degradation ({args.preset}), {args.n} samples per side, HR crops '
          f'{args.patch}x{args.patch} from {len(images)} images; seconds per sample: official '
          f'{seconds["official"] / args.n:.4f}, project {seconds["project"] / args.n:.4f}')
    print(f'{"measure":<7} {"side":<9} {"p10":>8} {"p50":>8} {"p90":>8} {"mean":>8}   KS D  p-value')
    for key in ('psnr', 'grad', 'hf', 'block'):
        vals = {s: np.array([r[key] for r in rows[s]]) for s in rows}
        vals = {s: v[np.isfinite(v)] for s, v in vals.items()}
        ks = stats.ks_2samp(vals['official'], vals['project'])
        for j, s in enumerate(('official', 'project')):
            q = np.percentile(vals[s], [10, 50, 90])
            tail = f'   {ks.statistic:.3f}  {ks.pvalue:.3f}' if j else ''
            print(f'{key:<7} {s:<9} {q[0]:8.3f} {q[1]:8.3f} {q[2]:8.3f} {vals[s].mean():8.3f}{tail}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
