"""Cost per image of each evaluation metric, measured side by side in one run.

    python bench/metric_cost.py                      # bundled Set5 HR images, x4, CPU
    python bench/metric_cost.py --repeat 5 --cuda    # on the GPU (synchronised timing)
    python bench/metric_cost.py --metrics psnr+ssim+niqe --metric_weights DIR

For every Set5 image, SR = PIL bicubic down and up by 4; each metric scores (SR, HR) as the
evaluation does (border of 4 cropped).  The metrics run interleaved (psnr, ssim, lpips, ...,
psnr, ssim, ...) --repeat times after one warm-up round, so that machine noise hits them
alike; the median per image is printed, and the ratio to PSNR+SSIM.  FID, a metric of the
set, is timed per image as the evaluation hands it an image (Inception features of the SR
image; the HR's are cached after the first evaluation, as here after the warm-up round), and
its once-per-set step (means, covariances, the 2048x2048 matrix square root) is timed on its
own.  The weights are the files of --metric_weights when given (the real ones), else random
weights in the published layouts in a temporary folder (the cost is the same).
"""
import argparse
import atexit
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'src'))
sys.path.insert(0, str(REPO / 'tests'))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

NAMES = ('psnr', 'ssim', 'lpips', 'lpips_vgg', 'dists', 'niqe', 'fid', 'musiq', 'clipiqa')


def pairs(scale=4):
    out = []
    for path in sorted((REPO / 'dataset' / 'benchmark' / 'Set5' / 'HR').glob('*.png')):
        img = Image.open(path).convert('RGB')
        img = img.crop((0, 0, img.width - img.width % scale, img.height - img.height % scale))
        sr = img.resize((img.width // scale, img.height // scale), Image.BICUBIC).resize(
            img.size, Image.BICUBIC)
        t = [torch.from_numpy(np.asarray(i).copy()).permute(2, 0, 1)[None].float()
             for i in (sr, img)]
        out.append((path.stem, *t))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--cuda', action='store_true')
    p.add_argument('--metrics', default='+'.join(NAMES), help='metrics to time, joined by "+"')
    p.add_argument('--metric_weights', default='',
                   help='folder of the real weight files (default: random weights)')
    opts = p.parse_args()
    names = tuple(opts.metrics.split('+'))
    weights = opts.metric_weights
    if not weights:
        import paper_weights
        weights = tempfile.mkdtemp(prefix='metric_weights_')
        atexit.register(shutil.rmtree, weights, ignore_errors=True)
        paper_weights.write_all_weights(Path(weights))
        print(f'random weights in the published layouts in {weights}')
    import metric
    import option
    device = torch.device('cuda' if opts.cuda else 'cpu')
    args = option.parse_args(['--metrics', '+'.join(names), '--metric_weights', weights])
    metrics = metric.build(args, device)
    print(f'torch {torch.__version__}, {device}, {torch.get_num_threads()} threads')
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    totals = {n: [] for n in names}
    print(f'{"image":10s} {"size":>9s} ' + ' '.join(f'{n:>10s}' for n in names) + '   (ms)')
    images = pairs()
    for name, sr, hr in images:
        sr, hr = sr.to(device), hr.to(device)
        times = {n: [] for n in names}
        for round_ in range(opts.repeat + 1):
            for n in names:
                sync()
                t0 = time.perf_counter()
                if metric.per_set(n):
                    metrics[n].add(sr, hr, 4, True)
                else:
                    metrics[n](sr, hr, 4, True)
                sync()
                if round_:                     # round 0 warms up
                    times[n].append(1000 * (time.perf_counter() - t0))
        med = {n: statistics.median(v) for n, v in times.items()}
        for n in names:
            totals[n].append(med[n])
        print(f'{name:10s} {hr.shape[-1]:4d}x{hr.shape[-2]:<4d} '
              + ' '.join(f'{med[n]:10.1f}' for n in names))
    mean = {n: statistics.mean(v) for n, v in totals.items()}
    print(f'{"mean":10s} {"":9s} ' + ' '.join(f'{mean[n]:10.1f}' for n in names))
    if 'psnr' in names and 'ssim' in names:
        base = mean['psnr'] + mean['ssim']
        print('ratio to PSNR+SSIM: ' + ', '.join(f'{n} {mean[n] / base:.1f}x'
                                                  for n in names if n not in ('psnr', 'ssim')))
    for n in names:
        if metric.per_set(n):
            metrics[n].reset()
            for _, sr, hr in images:
                metrics[n].add(sr.to(device), hr.to(device), 4, True)
            t0 = time.perf_counter()
            metrics[n].result()
            print(f'{n} once per set and scale ({len(images)} images): '
                  f'{time.perf_counter() - t0:.1f} s')


if __name__ == '__main__':
    main()
