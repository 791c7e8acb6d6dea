"""Cost per image of each evaluation metric, measured side by side in one run.

    python bench/metric_cost.py                      # bundled Set5 HR images, x4, CPU
    python bench/metric_cost.py --repeat 5 --cuda    # on the GPU (synchronised timing)

For every Set5 image, SR = PIL bicubic down and up by 4; each metric scores (SR, HR) as the
evaluation does (border of 4 cropped).  The metrics run interleaved (psnr, ssim, lpips, ...,
psnr, ssim, ...) --repeat times after one warm-up round, so that machine noise hits them
alike; the median per image is printed, and the ratio to PSNR+SSIM.  The backbones are the
real files in torch hub's cache when present, else random weights in the same layout in a
temporary TORCH_HOME (the cost is the same).
"""
import argparse
import atexit
import os
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

NAMES = ('psnr', 'ssim', 'lpips', 'lpips_vgg', 'dists')


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
    opts = p.parse_args()
    from metric import _weights
    if not all((_weights.hub_checkpoints() / _weights.BACKBONES[arch][0]).is_file()
               for arch in ('alexnet', 'vgg16')):               # the metrics' backbones
        import torchvision_standin
        home = tempfile.mkdtemp(prefix='torch_home_')
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        torchvision_standin.write_hub(home)
        os.environ['TORCH_HOME'] = home
        print(f'random backbones in {home} (no real files in the hub cache)')
    import metric
    import option
    device = torch.device('cuda' if opts.cuda else 'cpu')
    args = option.parse_args(['--metrics', '+'.join(NAMES)])
    metrics = metric.build(args, device)
    print(f'torch {torch.__version__}, {device}, {torch.get_num_threads()} threads')
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    totals = {n: [] for n in NAMES}
    print(f'{"image":10s} {"size":>9s} ' + ' '.join(f'{n:>10s}' for n in NAMES) + '   (ms)')
    for name, sr, hr in pairs():
        sr, hr = sr.to(device), hr.to(device)
        times = {n: [] for n in NAMES}
        for round_ in range(opts.repeat + 1):
            for n in NAMES:
                sync()
                t0 = time.perf_counter()
                metrics[n](sr, hr, 4, True)
                sync()
                if round_:                     # round 0 warms up
                    times[n].append(1000 * (time.perf_counter() - t0))
        med = {n: statistics.median(v) for n, v in times.items()}
        for n in NAMES:
            totals[n].append(med[n])
        print(f'{name:10s} {hr.shape[-1]:4d}x{hr.shape[-2]:<4d} '
              + ' '.join(f'{med[n]:10.1f}' for n in NAMES))
    mean = {n: statistics.mean(v) for n, v in totals.items()}
    print(f'{"mean":10s} {"":9s} ' + ' '.join(f'{mean[n]:10.1f}' for n in NAMES))
    base = mean['psnr'] + mean['ssim']
    print('ratio to PSNR+SSIM: ' + ', '.join(f'{n} {mean[n] / base:.1f}x'
                                              for n in NAMES[2:]))


if __name__ == '__main__':
    main()
