"""Time DiffSR: one training step (``Trainer.step``, the real one: UNet forward on noised HR
patches, x0 recovery, every loss term, backward, optimiser) and one sampled image (the
evaluation forward: --diffusion_steps UNet passes), each beside EDSR doing the same job on
the same data, interleaved (A, B, B, A, ...) so that machine noise hits both alike.

    python bench/diffsr.py --unet_channels 32 64 --unet_layers 1 --scale 4 \
        --patch_size 64 --batch_size 8 --diffusion_steps 20 --iters 5

Flags after the bench's own are src/main.py flags for the DiffSR run, whose loss is
DiffSR_SSL's (1*EPS+0.1*L1+0.5*SSL, stride 3); the EDSR run drops the flags that only a
model or loss type reads and uses --loss 1*L1.  The sampled image is Set5 butterfly's LR
(64x64 at x4).  Figures: median wall-clock seconds and, in brackets, CPU seconds of all
threads (on a shared host the wall clock also counts time our threads did not run).
"""
import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import option  # noqa: E402
import registry  # noqa: E402
from train_step import build, step, timed  # noqa: E402


def _edsr_argv(rest):
    """``rest`` without the flags that only some model or loss type reads (DiffSR's, SSL's:
    the EDSR run would refuse them) and with EDSR's model and loss."""
    owned = set(registry.flag_owners('model', 'make_model'))
    owned |= set(registry.flag_owners('loss', 'make_loss'))
    owned |= {'loss', 'loss_range', 'template', 'model'}
    out, skip = [], False
    for token in rest:
        if token.startswith('--'):
            skip = token[2:].split('=')[0] in owned
        if not skip:
            out.append(token)
    return out + ['--model', 'EDSR', '--loss', '1*L1']


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iters', type=int, default=5, help='timed repetitions of each job')
    p.add_argument('--warmup', type=int, default=1, help='untimed repetitions first')
    ours, rest = p.parse_known_args()
    n = ours.iters + ours.warmup
    common = ['--data_train', 'Sample', '--data_test', 'Set5', '--n_threads', '0',
              '--test_every', str(n)]
    diff = option.parse_args(common + ['--model', 'DiffSR', '--loss',
                                       '1*EPS+0.1*L1+0.5*SSL', '--loss_range', '1',
                                       '--ssl_stride', '3'] + rest + ['--save', 'bench0'])
    edsr = option.parse_args(common + _edsr_argv(rest) + ['--save', 'bench1'])
    root = tempfile.mkdtemp(prefix='bench_diffsr_')
    trainers = [build(a, root) for a in (diff, edsr)]
    device = trainers[0].device
    cuda = device.type == 'cuda'
    batches = []
    it = iter(trainers[0].loader_train)
    for _ in range(n):
        item = next(it)
        batches.append((item[0].to(device), item[1].to(device)))
    test = trainers[0].loader_test[0].dataset
    names = [test[i][2] for i in range(len(test))]
    lr_img = test[names.index('butterfly')][0][None].to(device)
    print(f'torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, '
          f'DiffSR channels {list(diff.unet_channels)} layers {diff.unet_layers} x'
          f'{diff.scale[0]}, batch {diff.batch_size}, patch {diff.patch_size}, sampling '
          f'{diff.diffusion_steps} {diff.diffusion_sampler} steps on a '
          f'{lr_img.shape[-2]}x{lr_img.shape[-1]} LR image; EDSR {edsr.n_resblocks} blocks '
          f'{edsr.n_feats} features')
    train = [[], []]
    sample = [[], []]
    for i, (lr_b, hr_b) in enumerate(batches):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for k in order:
            t = step(trainers[k], lr_b, hr_b)
            if i >= ours.warmup:
                train[k].append(t)
        for k in order:
            net = trainers[k].model
            net.eval()
            with torch.no_grad():
                t = timed(lambda: net(lr_img, 0), cuda)
            net.train()
            if i >= ours.warmup:
                sample[k].append(t)

    def med(ts):
        return statistics.median(w for w, _ in ts), statistics.median(c for _, c in ts)

    for job, ts in (('training step', train), ('one sampled image', sample)):
        (wd, cd), (we, ce) = med(ts[0]), med(ts[1])
        print(f'{job}: DiffSR {wd:.3f} s (cpu {cd:.3f}), EDSR {we:.3f} s (cpu {ce:.3f}), '
              f'ratio {wd / we:.1f} (cpu {cd / ce:.1f})')


if __name__ == '__main__':
    main()
