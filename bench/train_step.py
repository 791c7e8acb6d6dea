"""Time the trainer's own training step (``Trainer.step``: forward with --precision, loss,
skip check, backward, --gclip, optimiser, --ema_decay) on real image patches.

    python bench/train_step.py --model EDSR --scale 2 --batch_size 16 --patch_size 96 \
        --loss 1*L1+1000*SSL+1*SPL --ssl_stride 3 --iters 10 --compare 1*L1

Any flag of src/main.py is accepted.  Patches come from the embedded Sample set and are
loaded before timing.  With ``--compare LOSS`` a second configuration that differs only in
its loss is timed in the same process, steps interleaved (A, B, B, A, A, B, ...: each batch
goes through both, and which one goes first alternates) so that machine noise hits both
alike; the ratio of the medians is printed. Each figure is the wall-clock time and, in
brackets, the CPU time of all the process's threads: on a machine shared with other work
the host may not run our threads for a while, which the wall clock counts and the CPU time
does not.
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
import loss as loss_pkg  # noqa: E402
import model as model_pkg  # noqa: E402
import option  # noqa: E402
from experiment import Experiment  # noqa: E402
from trainer import Trainer  # noqa: E402


def build(args, root):
    """A Trainer for the parsed ``args`` whose experiment writes nothing (its folder is
    never made)."""
    torch.manual_seed(args.seed)
    device = torch.device('cuda' if torch.cuda.is_available() and not args.cpu else 'cpu')
    loader = data.Data(args)
    net = model_pkg.Model(args, device)
    criterion = loss_pkg.Loss(args, raw_outputs=net.raw_outputs).to(device)
    exp = Experiment(args, writer=False, root=root)
    trainer = Trainer(args, loader, net, criterion, exp, device)
    net.train()
    return trainer


def timed(fn, cuda=False):
    """(wall seconds, CPU seconds of the process, all threads) of ``fn()`` (with ``cuda``:
    the device work it queued included)."""
    if cuda:
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


def step(trainer, lr_img, hr_img):
    """``timed`` of one ``Trainer.step``."""
    return timed(lambda: trainer.step(lr_img, hr_img, 0), trainer.device.type == 'cuda')


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iters', type=int, default=10, help='timed steps per configuration')
    p.add_argument('--warmup', type=int, default=1, help='untimed steps first')
    p.add_argument('--compare', type=str, default='',
                   help='a second loss string timed side by side')
    ours, rest = p.parse_known_args()
    common = ['--data_train', 'Sample', '--n_threads', '0', '--test_every',
              str(ours.iters + ours.warmup)]
    first = option.parse_args(common + rest + ['--save', 'bench0'])
    configs = [first]
    if ours.compare:
        # The same run but for its loss (flags only the first loss reads stay, unused).
        configs.append(first.replace(loss=ours.compare, save='bench1',
                                     loss_terms=loss_pkg.parse_loss_string(ours.compare)))
    root = tempfile.mkdtemp(prefix='bench_train_step_')
    trainers = [build(c, root) for c in configs]
    args, device = trainers[0].args, trainers[0].device
    data_iter = iter(trainers[0].loader_train)
    batches = []
    for _ in range(ours.iters + ours.warmup):
        item = next(data_iter)
        batches.append((item[0].to(device), item[1].to(device)))
    print(f'torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, '
          f'model {args.model} x{args.scale[0]}, batch {args.batch_size}, patch '
          f'{args.patch_size}, precision {args.precision}')
    times = [[] for _ in trainers]
    for i, (lr_img, hr_img) in enumerate(batches):
        # A, B, then B, A on the next batch: neither configuration always runs first.
        for k in (range(len(trainers)) if i % 2 == 0 else reversed(range(len(trainers)))):
            t = step(trainers[k], lr_img, hr_img)
            if i >= ours.warmup:
                times[k].append(t)
    walls = [statistics.median(wall for wall, _ in t) for t in times]
    cpus = [statistics.median(cpu for _, cpu in t) for t in times]
    for trainer, wall, cpu in zip(trainers, walls, cpus):
        print(f'loss {trainer.args.loss}: sec/iter: {wall:.4f} (cpu {cpu:.4f})')
    if len(walls) == 2:
        print(f'ratio ({trainers[0].args.loss}) / ({trainers[1].args.loss}): '
              f'{walls[0] / walls[1]:.3f} (cpu {cpus[0] / cpus[1]:.3f})')


if __name__ == '__main__':
    main()
