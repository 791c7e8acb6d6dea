"""Cost of on-the-fly LR synthesis (``--degradation``) beside the training step it feeds.

    python bench/degrade.py --degradation realesrgan --model RRDBNet --scale 4 \
        --batch_size 16 --patch_size 256 --iters 3

Any flag of src/main.py is accepted.  HR patches come from the embedded Sample set and are
loaded before timing.  Each iteration times the trainer's synthesis of one batch (the
degradation, the pool when ``--degradation_pool`` is set, the USM target with
``--degradation_usm_gt``) and then ``Trainer.step`` on its output, on the training device;
the medians and their ratio are printed.  The JPEG stages run on the CPU (libjpeg) also when
training on a GPU; the line 'of which JPEG' says how much of the synthesis that is.

``--beside NAME[+NAME]`` also times those presets' synthesis on the same batches, in the same
loop (the presets' order alternates from batch to batch), and prints each one's median and
its ratio to ``--degradation``'s, e.g. ``--degradation realesrgan --beside bsrgan``.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src'))

import torch  # noqa: E402

import data  # noqa: E402
import degradation  # noqa: E402
import loss as loss_pkg  # noqa: E402
import model as model_pkg  # noqa: E402
import option  # noqa: E402
from degradation import _ops, _training  # noqa: E402
from experiment import Experiment  # noqa: E402
from trainer import Trainer  # noqa: E402


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


class _JpegClock:
    """Wraps _ops.jpeg to add up the seconds spent in it."""

    def __init__(self):
        self.seconds = 0.0
        self.inner = _ops.jpeg

    def __call__(self, img, quality):
        t0 = time.perf_counter()
        out = self.inner(img, quality)
        self.seconds += time.perf_counter() - t0
        return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iters', type=int, default=3, help='timed iterations')
    p.add_argument('--warmup', type=int, default=1, help='untimed iterations first')
    p.add_argument('--beside', type=str, default='',
                   help='other presets timed on the same batches, joined by "+"')
    ours, rest = p.parse_known_args()
    n = ours.iters + ours.warmup
    argv = ['--data_train', 'Sample', '--n_threads', '0', '--test_every', str(n),
            '--data_test', 'Set5', '--save', 'bench_degrade'] + rest
    args = option.parse_args(argv)
    if args.degradation == 'bicubic':
        p.error('give --degradation NAME (not bicubic): bicubic LR comes from the dataset')
    others = [n.strip().lower() for n in ours.beside.split('+') if n.strip()]
    for name in others:
        if name not in degradation.names() or degradation.make(name, args.scale[0]) is None:
            p.error(f'--beside {name!r}: give presets of src/degradation/ other than bicubic')
    torch.manual_seed(args.seed)
    device = torch.device('cuda' if torch.cuda.is_available() and not args.cpu else 'cpu')
    loader = data.Data(args.replace(data_test=[]))
    net = model_pkg.Model(args, device)
    criterion = loss_pkg.Loss(args).to(device)
    exp = Experiment(args, writer=False, root=tempfile.mkdtemp(prefix='bench_degrade_'))
    trainer = Trainer(args, loader, net, criterion, exp, device)
    net.train()
    loader.set_epoch(1)
    batches = [item[1].to(device) for _, item in zip(range(n), loader.loader_train)]
    print(f'torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, '
          f'--degradation {args.degradation}, model {args.model} x{args.scale[0]}, batch '
          f'{args.batch_size}, HR patch {args.patch_size}, loss {args.loss}')
    synths = {args.degradation: trainer.synth}
    synths.update({n: _training.make(args.replace(degradation=n, degradation_pool=0,
                                                  degradation_usm_gt=False)) for n in others})
    clock = _JpegClock()
    _ops.jpeg = clock
    synth_t = {n: [] for n in synths}
    jpeg_t = {n: [] for n in synths}
    step_t = []
    try:
        for b, hr in enumerate(batches):
            names = list(synths) if b % 2 == 0 else list(synths)[::-1]
            for name in names:
                clock.seconds = 0.0
                _sync(device)
                t0 = time.perf_counter()
                out = synths[name](hr, 1, b)
                _sync(device)
                if b >= ours.warmup:
                    synth_t[name].append(time.perf_counter() - t0)
                    jpeg_t[name].append(clock.seconds)
                if name == args.degradation:
                    lr_img, hr_img = out
            _sync(device)
            t1 = time.perf_counter()
            trainer.step(lr_img, hr_img, 0)
            _sync(device)
            t2 = time.perf_counter()
            if b >= ours.warmup:
                step_t.append(t2 - t1)
    finally:
        _ops.jpeg = clock.inner
    st = statistics.median(step_t)
    first = statistics.median(synth_t[args.degradation])
    for name in synths:
        s, j = statistics.median(synth_t[name]), statistics.median(jpeg_t[name])
        label = 'degradation' if name == args.degradation else f'degradation {name}'
        print(f'{label}: {s:.3f} s/batch (of which JPEG {j:.3f} s)'
              + (f', ratio to {args.degradation}: {s / first:.3f}' if name != args.degradation
                 else ''))
    print(f'training step: {st:.3f} s/batch')
    print(f'ratio degradation / step: {first / st:.3f}')
    for name in others:
        print(f'ratio {name} / step: {statistics.median(synth_t[name]) / st:.3f}')


if __name__ == '__main__':
    main()
