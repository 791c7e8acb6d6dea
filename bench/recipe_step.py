"""Step time and peak memory of the SPSR / BebyGAN / RankSRGAN recipes, and of BBL alone.

    python bench/recipe_step.py --iters 3                 # the three templates, batch 1
    python bench/recipe_step.py --bbl --batch 16          # BBL at 192x192: chunked vs whole

Each template runs in a subprocess of its own (so that its peak resident memory is its
own): the real Trainer.step at the template's official patch size with --batch_size 1, on
random weights (the generator's own initialisation, random VGG19 and ranker files: speed
does not depend on the values), after one untimed step.  Printed per template: the median
wall-clock seconds per step (CPU seconds of all threads in brackets) and the process's peak
resident set size (ru_maxrss) after the steps, and before the first step.

--bbl times the best-buddy loss on [B, 3, 192, 192] images (BebyGAN's patch) as the project
computes it (src/loss/bbl.py, 1024 patches scored at a time) and as one batched score
matrix ([B, 4096, 5376], the official code's shape), side by side in one process, and the
growth of the peak resident memory over each call (each run in a fresh subprocess).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'src'))
sys.path.insert(0, os.path.join(HERE, '..', 'tests'))

import torch  # noqa: E402

TEMPLATES = ('SPSR_SSL', 'BebyGAN_SSL', 'RankSRGANPI_SSL')


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: KiB


def run_template(template, iters):
    """Time ``iters`` steps of ``template`` (batch 1) in this process; returns a dict."""
    import option
    from train_step import build, step    # bench/train_step.py
    from vgg_weights import random_vgg19_state
    from loss.rank import RankerVGG12
    tmp = tempfile.mkdtemp(prefix='bench_recipe_')
    vgg = os.path.join(tmp, 'vgg19.pth')
    torch.save(random_vgg19_state(), vgg)
    ranker = os.path.join(tmp, 'ranker.pth')
    torch.save(RankerVGG12().state_dict(), ranker)
    flags = ['--template', template, '--batch_size', '1', '--data_train', 'Sample',
             '--n_threads', '0', '--test_every', str(iters + 1), '--vgg_weights', vgg,
             '--save', 'bench_recipe']
    if template == 'RankSRGANPI_SSL':
        flags += ['--ranker_pre_train', ranker]
    args = option.parse_args(flags)
    trainer = build(args, tmp)
    batches = []
    data_iter = iter(trainer.loader_train)
    for _ in range(iters + 1):
        item = next(data_iter)
        batches.append((item[0], item[1]))
    before = peak_mib()
    times = [step(trainer, lr, hr) for lr, hr in batches]
    timed = times[1:]
    return {'template': template, 'patch': args.patch_size,
            'wall': statistics.median(t[0] for t in timed),
            'cpu': statistics.median(t[1] for t in timed),
            'peak_mib': peak_mib(), 'before_mib': before, 'iters': iters}


def bbl_whole(sr, hr):
    """Best buddies from one batched [B, N, M] score matrix (the official code's shape)."""
    import torch.nn.functional as F
    from loss.bbl import CANDIDATE_SCALES, patches
    p_sr, p_hr = patches(sr), patches(hr)
    cand = torch.cat([p_hr] + [patches(F.interpolate(hr, scale_factor=s, mode='bicubic',
                                                     align_corners=False))
                               for s in CANDIDATE_SCALES], 1)

    def dist(x):
        d = (x * x).sum(2, keepdim=True) + (cand * cand).sum(2).unsqueeze(1) \
            - 2.0 * torch.bmm(x, cand.transpose(1, 2))
        return d.clamp(min=0.0)
    score = dist(p_sr) + dist(p_hr)
    index = score.argmin(2).unsqueeze(-1).expand(-1, -1, cand.shape[-1])
    return F.l1_loss(p_sr, torch.gather(cand, 1, index))


def run_bbl(kind, batch, iters):
    from loss.bbl import BestBuddyLoss
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(batch, 3, 192, 192, generator=g)
    sr = (hr + 0.05 * torch.randn(hr.shape, generator=g)).requires_grad_(True)
    fn = BestBuddyLoss() if kind == 'chunked' else bbl_whole
    before = peak_mib()
    walls = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn(sr, hr).backward()
        walls.append(time.perf_counter() - t0)
    return {'kind': kind, 'batch': batch, 'wall': statistics.median(walls),
            'growth_mib': peak_mib() - before}


def child(argv):
    """Run one measurement given as JSON in argv; print its JSON result."""
    job = json.loads(argv)
    torch.manual_seed(0)
    if job['what'] == 'template':
        result = run_template(job['template'], job['iters'])
    else:
        result = run_bbl(job['kind'], job['batch'], job['iters'])
    print('RESULT ' + json.dumps(result))


def spawn(job):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', json.dumps(job)],
                          capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
    if proc.returncode or not lines:
        sys.exit(f'{job}: failed\n{proc.stderr[-3000:]}')
    return json.loads(lines[-1][7:])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iters', type=int, default=3, help='timed steps (or BBL calls)')
    p.add_argument('--templates', nargs='+', default=list(TEMPLATES))
    p.add_argument('--bbl', action='store_true', help='time BBL alone instead')
    p.add_argument('--batch', type=int, default=16, help='--bbl: images per call')
    p.add_argument('--child', type=str, default='', help=argparse.SUPPRESS)
    ours = p.parse_args()
    if ours.child:
        child(ours.child)
        return
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}')
    if ours.bbl:
        for kind in ('chunked', 'whole'):
            r = spawn({'what': 'bbl', 'kind': kind, 'batch': ours.batch, 'iters': ours.iters})
            print(f'BBL {kind:8s} [{r["batch"]}, 3, 192, 192]: {r["wall"]:.3f} s per forward+'
                  f'backward, peak memory +{r["growth_mib"]:.0f} MiB')
        return
    for template in ours.templates:
        r = spawn({'what': 'template', 'template': template, 'iters': ours.iters})
        print(f'{template}: patch {r["patch"]}, batch 1: {r["wall"]:.2f} s/step '
              f'(cpu {r["cpu"]:.2f}), peak RSS {r["peak_mib"]:.0f} MiB '
              f'({r["before_mib"]:.0f} MiB before the first step)')


if __name__ == '__main__':
    main()
