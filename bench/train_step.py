"""Time one training step (forward, loss, backward, optimiser step) on real image patches.

    python bench/train_step.py --model EDSR --scale 2 --batch_size 16 --patch_size 96 \
        --loss 1*L1+1000*SSL+1*SPL --ssl_stride 3 --iters 10 --compare 1*L1

Any flag of src/main.py is accepted.  Patches come from the embedded Sample set and are
loaded before timing.  With ``--compare LOSS`` a second configuration that differs only in
its loss is timed in the same process, steps interleaved (A, B, A, B, ...) so that machine
noise hits both alike; the ratio of the medians is printed.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src'))

import torch  # noqa: E402

import data  # noqa: E402
import loss as loss_pkg  # noqa: E402
import model as model_pkg  # noqa: E402
import option  # noqa: E402
from trainer import make_optimizer  # noqa: E402


def build(argv):
    args = option.parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device('cuda' if torch.cuda.is_available() and not args.cpu else 'cpu')
    net = model_pkg.Model(args, device)
    net.train()
    criterion = loss_pkg.Loss(args).to(device)
    opt = make_optimizer(args, [p for p in net.parameters() if p.requires_grad])
    return args, device, net, criterion, opt


def step(state, lr_img, hr_img, age):
    args, device, net, criterion, opt = state
    if device.type == 'cuda':
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    sr = net(lr_img, 0)
    total = criterion(sr.float(), hr_img, age=age)
    total.backward()
    opt.step()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iters', type=int, default=10, help='timed steps per configuration')
    p.add_argument('--warmup', type=int, default=1, help='untimed steps first')
    p.add_argument('--compare', type=str, default='',
                   help='a second loss string timed side by side')
    ours, rest = p.parse_known_args()
    common = ['--data_train', 'Sample', '--n_threads', '0', '--test_every',
              str(ours.iters + ours.warmup)]
    configs = [common + rest]
    if ours.compare:
        configs.append(common + rest + ['--loss', ours.compare])
    states = [build(c) for c in configs]
    args, device = states[0][0], states[0][1]
    loader = data.Data(args).loader_train
    data_iter = iter(loader)
    batches = []
    for _ in range(ours.iters + ours.warmup):
        item = next(data_iter)
        batches.append((item[0].to(device), item[1].to(device)))
    print(f'torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, '
          f'model {args.model} x{args.scale[0]}, batch {args.batch_size}, patch {args.patch_size}')
    times = [[] for _ in states]
    for i, (lr_img, hr_img) in enumerate(batches):
        age = (i + 1) / len(batches)
        for k, state in enumerate(states):
            t = step(state, lr_img, hr_img, age)
            if i >= ours.warmup:
                times[k].append(t)
    medians = [statistics.median(t) for t in times]
    for state, med in zip(states, medians):
        print(f'loss {state[0].loss}: sec/iter: {med:.4f}')
    if len(medians) == 2:
        print(f'ratio ({states[0][0].loss}) / ({states[1][0].loss}): {medians[0] / medians[1]:.3f}')


if __name__ == '__main__':
    main()
