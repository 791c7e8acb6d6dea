"""Benchmark of the SSL patch-distance op against the published PyTorch (unfold) formulation.

    python bench/ssl_op.py                 # both cases, op and unfold side by side
    python bench/ssl_op.py --skip_unfold   # op only (the unfold runs take ~10 s and ~4 GB)
    python bench/ssl_op.py --train         # also the SSL loss on a 16x3x96x96 training batch
    python bench/ssl_op.py --against f3b172f   # this kernel against another git revision's
    python bench/ssl_op.py --ways          # the backward's two ways, masks of growing overlap
    python bench/ssl_op.py --ways --cflags=-mno-avx512f   # the same, built for AVX2

Cases (search 25, window 9, images in [0, 1] as the loss passes them):
  random : 1x3x128x128 noise, 10% of the pixels masked (1,638), fixed seed
  edges  : 128x128 crop of dataset/benchmark/Set5/HR/butterfly.png, its edge mask
           (threshold 20, stride 1)
Each (case, method) runs in a fresh subprocess: one first forward+backward gives the peak
memory (and is timed: "first run ms", it pays the page faults of fresh memory), then
--repeat further runs give the time "ms" (median, wall clock).
"cpu ms" is the CPU time of the same runs (median, all threads): on a machine shared with other
work it is far steadier than the wall clock, and with --threads 1 the ratio of CPU times is
the ratio an idle machine would show.
"floor GF/s" is the arithmetic rate achieved against the box-sum floor: the flops of the
box-sum formulation (floor_flops; its cost does not depend on the mask) divided by the
measured time, so that the distance to the machine's limit is visible.
--against REV builds the CPU op of git revision REV (its src/loss/ssl_cuda/*.cpp, *.h) into
.cache/ssl_ops/rev-<sha>/ and times its forward and backward against this checkout's, on five
cases (the two above, a 1% random mask, and the training batch at stride 3 and at stride 1),
calls interleaved in one process, and checks that both give the same values (to float
rounding).
Every figure comes with the machine kind it was measured on: the CPU model (`lscpu`'s
"Model name") and the width of the vectors the op's CPU kernels were built for.
--against also gives each side's CPU time (all threads, median): on a shared machine its
ratio is the steadier one.
Peak memory is the process's peak resident set (ru_maxrss) after the cold run minus its
resident set just before it: everything the run touched (torch tensors, the op's C++
buffers, allocator slack), an upper bound when an earlier transient peak was higher.
tracemalloc would miss torch's allocations, the torch profiler the op's own buffers.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'src'))

from _compare import commit_of, file_at, interleaved  # noqa: E402

SEARCH, WINDOW = 25, 9
BUTTERFLY = REPO / 'dataset' / 'benchmark' / 'Set5' / 'HR' / 'butterfly.png'
CASES = {
    'random': '10% random mask, 1x3x128x128',
    'edges': 'butterfly.png 128x128 crop, edge mask',
}


def random_mask(count, gen=None):
    """Bool mask [1, 1, 128, 128] with count pixels set at random (seed 0 unless gen)."""
    import torch

    gen = gen or torch.Generator().manual_seed(0)
    mask = torch.zeros(128 * 128, dtype=torch.bool)
    mask[torch.randperm(128 * 128, generator=gen)[:count]] = True
    return mask.view(1, 1, 128, 128)


def make_case(name):
    """(image [1, 3, 128, 128] in [0, 1], bool mask [1, 1, 128, 128])."""
    import numpy as np
    import torch
    from PIL import Image

    if name == 'random':
        gen = torch.Generator().manual_seed(0)
        image = torch.rand(1, 3, 128, 128, generator=gen)
        return image, random_mask(1638, gen)
    from loss.ssl import edge_mask
    rgb = np.array(Image.open(BUTTERFLY).convert('RGB'))[64:192, 64:192]
    hr = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    return hr / 255, edge_mask(hr)


def unfold_distances(image, mask, search=SEARCH, window=WINDOW):
    """The published PyTorch mode for one image: unfold every search square, keep the masked
    ones, unfold every window inside them (zero padding = windows leaving the square count
    as 0), squared difference to the centre window summed over channels and window."""
    import torch.nn.functional as F

    _, c, _, _ = image.shape
    p, ss = search // 2, search * search
    squares = F.unfold(F.pad(image, (p, p, p, p), mode='reflect'), search)  # [1, C*S*S, H*W]
    index = mask.reshape(-1).nonzero().squeeze(1)
    n = index.numel()
    squares = squares[0, :, index].reshape(c, ss, n).permute(0, 2, 1)
    squares = squares.reshape(1, c * n, search, search)
    windows = F.unfold(squares, window, padding=window // 2)  # [1, C*N*W*W, S*S]
    windows = windows.reshape(c, n, window * window, ss).permute(1, 0, 2, 3)
    windows = windows.reshape(n, c * window * window, ss)
    centre = windows[:, :, ss // 2:ss // 2 + 1]
    return ((windows - centre) ** 2).sum(1)


def floor_flops(b, c, h, w, search=SEARCH):
    """Flops of forward+backward in the box-sum formulation on every pixel of b images:
    per offset and pixel, forward E_d = sum_c (A[x] - A[x+d])^2 (3C) plus a running box sum
    of it, 2 adds down and 2 across (4); backward the box sums of the upstream gradient (4)
    and per channel t = g (A[x] - A[x+d]) added at x and subtracted at x + d (4C)."""
    return (7 * c + 8) * search * search * b * h * w


def cpu_model():
    """The CPU's model name, as `lscpu | grep 'Model name'` gives it (Linux), else the
    processor name."""
    import platform

    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith(('model name', 'Model name')):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_kind(ext=None):
    """'<CPU model>, <bits>-bit vectors (<ISA>)': the machine and the vectors the op's CPU
    kernels were built for (ext: a built op module; this checkout's by default)."""
    if ext is None:
        ext = build_checkout()
    vector_bytes = getattr(ext, 'vector_bytes', None)
    if vector_bytes is None:  # a revision built before the op reported it
        return f'{cpu_model()}, vector width not reported by this build'
    bits = 8 * vector_bytes()
    isa = {512: 'AVX-512', 256: 'AVX2', 128: 'SSE2/NEON'}.get(bits, '?')
    return f'{cpu_model()}, {bits}-bit vectors ({isa})'


def _rss_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def worker(case, method, repeat, out_file):
    """Runs in a fresh process; writes its figures (and D, dimage) to out_file."""
    import torch
    from loss.ssl_cuda import patch_distances

    image, mask = make_case(case)
    gen = torch.Generator().manual_seed(1)
    upstream = torch.randn(int(mask.sum()), SEARCH * SEARCH, generator=gen)
    fn = patch_distances if method == 'op' else unfold_distances

    def run(img=image, m=mask, up=upstream):
        x = img.clone().requires_grad_()
        d = fn(x, m, SEARCH, WINDOW)
        d.backward(up)
        return d.detach(), x.grad

    # One-time start-up outside the measurement (loading the op, the thread pool, the
    # autograd engine), on a small input so that its freed memory hides little.
    small = mask[..., :48, :48].clone()
    small.view(-1)[::11] = True
    run(image[..., :48, :48], small, torch.ones(int(small.sum()), SEARCH * SEARCH))

    rss_before = _rss_bytes()
    start = time.perf_counter()
    d, grad = run()
    cold_ms = (time.perf_counter() - start) * 1e3
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        times.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    torch.save({'d': d, 'grad': grad}, out_file + '.pt')
    Path(out_file).write_text(json.dumps({
        'n': int(mask.sum()), 'cold_ms': cold_ms,
        'ms': statistics.median(times) if times else cold_ms,
        'cpu_ms': statistics.median(cpu) if cpu else float('nan'),
        'extra_mb': max(0, peak - rss_before) / 2 ** 20, 'threads': torch.get_num_threads()}))


def measure(case, method, repeat, threads, tmp):
    out = os.path.join(tmp, f'{case}_{method}.json')
    cmd = [sys.executable, __file__, '--worker', case, method, '--repeat', str(repeat),
           '--out', out]
    if threads:
        cmd += ['--threads', str(threads)]
    subprocess.run(cmd, check=True)
    return json.loads(Path(out).read_text()), out + '.pt'


def train_batch_hr(gen=None):
    """16 random 96x96 crops of the Set5 HR images, [16, 3, 96, 96] in [0, 255]."""
    import numpy as np
    import torch
    from PIL import Image

    gen = gen or torch.Generator().manual_seed(0)
    images = [np.array(Image.open(p).convert('RGB'))
              for p in sorted(BUTTERFLY.parent.glob('*.png'))]
    crops = []
    for i in range(16):
        img = images[i % len(images)]
        y = int(torch.randint(0, img.shape[0] - 96, (1,), generator=gen))
        x = int(torch.randint(0, img.shape[1] - 96, (1,), generator=gen))
        crops.append(torch.from_numpy(img[y:y + 96, x:x + 96].copy()).permute(2, 0, 1).float())
    return torch.stack(crops)


def train_batch_figures(repeat):
    """SSL loss (edge mask, both images' distances, arithmetic, backward) on a 16x3x96x96
    batch of Set5 crops with stride 3, as in training (the fused pass), and the same loss in
    two steps (op calls, then graph_loss), as it ran before the fusion; also the op alone."""
    import torch
    from loss.ssl import SSL, edge_mask
    from loss.ssl_cuda import graph_loss, patch_distances

    gen = torch.Generator().manual_seed(0)
    hr = train_batch_hr(gen)
    sr = hr + 5 * torch.randn(hr.shape, generator=gen)
    criterion = SSL(stride=3)
    mask = edge_mask(hr, stride=3)

    def timed(f):
        f()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            f()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)

    def loss_step():
        x = sr.clone().requires_grad_()
        criterion(x, hr).backward()

    def two_step():
        x = sr.clone().requires_grad_()
        m = edge_mask(hr, stride=3)
        d_sr = patch_distances(x / 255, m, SEARCH, WINDOW)
        with torch.no_grad():
            d_hr = patch_distances(hr / 255, m, SEARCH, WINDOW)
        graph_loss(d_sr, d_hr, 3, WINDOW, criterion.sigma, True, criterion.kl).backward()

    def op_step():
        x = (sr / 255).requires_grad_()
        d = patch_distances(x, mask, SEARCH, WINDOW)
        d.backward(torch.ones_like(d))

    def alternating(f, g):
        """Medians of f and g called in turn (f, g, f, g, ...): machine noise hits both."""
        f(), g()
        tf, tg, cf = [], [], []
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            f()
            tf.append((time.perf_counter() - start) * 1e3)
            cf.append((time.process_time() - start_cpu) * 1e3)
            start = time.perf_counter()
            g()
            tg.append((time.perf_counter() - start) * 1e3)
        return statistics.median(tf), statistics.median(cf), statistics.median(tg)

    loss_ms, loss_cpu_ms, two_step_ms = alternating(loss_step, two_step)
    return {'n': int(mask.sum()), 'mask_ms': timed(lambda: edge_mask(hr, stride=3)),
            'op_ms': timed(op_step), 'loss_ms': loss_ms, 'loss_cpu_ms': loss_cpu_ms,
            'two_step_ms': two_step_ms}


def flags_key(cflags):
    """A short name for a set of extra compiler flags ('' for none)."""
    import hashlib

    return hashlib.sha1(cflags.encode()).hexdigest()[:8] if cflags else ''


def build_checkout(cflags=''):
    """This checkout's CPU op module: the usual build, or with extra compiler flags one of its
    own in .cache/ssl_ops/flags-<key>/."""
    from loss.ssl_cuda import _build

    if not cflags:
        return _build.load()
    key = flags_key(cflags)
    folder = _build.build_folder(False).parent / f'flags-{key}'
    return _build.build_extension(f'ssl_ops_flags_{key}',
                                  [_build.SOURCE_DIR / s for s in _build.CPU_SOURCES], folder,
                                  extra_cflags=cflags.split())


def build_revision(rev, cflags=''):
    """The CPU op module of git revision rev, built (once) into .cache/ssl_ops/rev-<sha>/
    (rev-<sha>-flags-<key>/ with extra compiler flags)."""
    from loss.ssl_cuda import _build

    sha = commit_of(rev)
    listing = subprocess.run(['git', 'ls-tree', '--name-only', sha, 'src/loss/ssl_cuda/'],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    key = flags_key(cflags)
    name = f'rev-{sha[:12]}' + (f'-flags-{key}' if key else '')
    folder = _build.build_folder(False).parent / name
    source_dir = folder / 'src'
    source_dir.mkdir(parents=True, exist_ok=True)
    sources = []
    for path in listing:
        if path.endswith(('.cpp', '.h')):
            text = file_at(sha, path)
            target = source_dir / Path(path).name
            if not target.exists() or target.read_bytes() != text:
                target.write_bytes(text)
            if path.endswith('.cpp'):
                sources.append(target)
    return sha, _build.build_extension(f'ssl_ops_rev_{sha[:12]}{key}', sources, folder,
                                       extra_cflags=cflags.split())


def op_inputs(image, mask):
    """What the op's extension takes for one case: the reflect-padded image, the masked
    pixels' positions and a fixed upstream gradient [N, SEARCH^2]."""
    import torch
    import torch.nn.functional as F

    p = SEARCH // 2
    padded = F.pad(image, (p, p, p, p), mode='reflect').contiguous()
    pos = torch.nonzero(mask[:, 0]).contiguous()
    upstream = torch.randn(pos.shape[0], SEARCH * SEARCH,
                           generator=torch.Generator().manual_seed(1))
    return padded, pos, upstream


def against(rev, repeat, cflags=''):
    """Forward and backward of this checkout's kernel and revision rev's, interleaved; both
    built with the extra compiler flags cflags, if any."""
    import torch
    from loss.ssl import edge_mask

    sha, theirs = build_revision(rev, cflags)
    ours = build_checkout(cflags)
    cases = [(CASES[name], *make_case(name)) for name in CASES]
    # 1% of the pixels: windows that barely overlap (the backward's per-pixel way)
    cases.append(('1% random mask, 1x3x128x128', cases[0][1], random_mask(164)))
    hr = train_batch_hr()
    cases.append(('training batch 16x3x96x96, stride 3', hr / 255, edge_mask(hr, stride=3)))
    cases.append(('training batch, stride 1 (the default)', hr / 255, edge_mask(hr, stride=1)))
    print(f'this checkout against {sha[:12]} ({torch.get_num_threads()} threads; '
          f'median ms of {repeat} interleaved calls; extra compiler flags: {cflags or "none"}); '
          f'{machine_kind(ours)}')
    print(f'{"case":40s} {"N":>5s} {"fwd theirs":>11s} {"fwd ours":>9s} {"ratio":>6s} '
          f'{"bwd theirs":>11s} {"bwd ours":>9s} {"ratio":>6s} {"cpu ratio f/b":>14s}  agreement')
    for title, image, mask in cases:
        padded, pos, upstream = op_inputs(image, mask)
        outs = {}

        def forward_backward(name, ext):
            def call():
                start, start_cpu = time.perf_counter(), time.process_time()
                d = ext.forward(padded, pos, SEARCH, WINDOW)
                middle, middle_cpu = time.perf_counter(), time.process_time()
                g = ext.backward(padded, pos, upstream, SEARCH, WINDOW)
                end, end_cpu = time.perf_counter(), time.process_time()
                outs[name] = (d, g)
                return ((middle - start) * 1e3, (end - middle) * 1e3,
                        (middle_cpu - start_cpu) * 1e3, (end_cpu - middle_cpu) * 1e3)
            return call

        med = interleaved({'theirs': forward_backward('theirs', theirs),
                           'ours': forward_backward('ours', ours)}, repeat)
        (d0, g0), (d1, g1) = outs['theirs'], outs['ours']
        d_err = ((d1 - d0).abs().max() / d0.abs().max()).item()
        g_err = ((g1 - g0).abs().max() / g0.abs().max()).item()
        print(f'{title:40s} {pos.shape[0]:5d} {med["theirs"][0]:11.1f} {med["ours"][0]:9.1f} '
              f'{med["theirs"][0] / med["ours"][0]:5.2f}x {med["theirs"][1]:11.1f} '
              f'{med["ours"][1]:9.1f} {med["theirs"][1] / med["ours"][1]:5.2f}x '
              f'{med["theirs"][2] / med["ours"][2]:6.2f}x/{med["theirs"][3] / med["ours"][3]:.2f}x  '
              f'D {d_err:.1e}, grad {g_err:.1e}')
    fused_against(sha, theirs, ours, hr, repeat)


def fused_against(sha, theirs, ours, hr, repeat):
    """The fused SSL loss (ssl_loss) of both kernels on the training batch at stride 3 and 1,
    interleaved, when revision sha's takes the same arguments (the unpadded images and the
    scale)."""
    import torch
    from loss.ssl import edge_mask

    gen = torch.Generator().manual_seed(0)
    sr = (hr + 5 * torch.randn(hr.shape, generator=gen)).clamp(0, 255)
    for stride in (3, 1):
        pos = torch.nonzero(edge_mask(hr, stride=stride)[:, 0]).contiguous()
        args = (sr, hr, pos, SEARCH, WINDOW, 1.0 / (3 * WINDOW * WINDOW * 0.004), True, 1.0,
                1 / 255)
        try:
            theirs.ssl_loss(*args)
        except (TypeError, RuntimeError):
            print(f'fused loss: {sha[:12]} has no ssl_loss taking unpadded images and a scale; '
                  'not compared')
            return
        outs = {}

        def loss(name, ext):
            def call():
                start, start_cpu = time.perf_counter(), time.process_time()
                outs[name] = ext.ssl_loss(*args)
                return ((time.perf_counter() - start) * 1e3,
                        (time.process_time() - start_cpu) * 1e3)
            return call

        med = interleaved({'theirs': loss('theirs', theirs), 'ours': loss('ours', ours)},
                          repeat)
        (l0, g0), (l1, g1) = outs['theirs'], outs['ours']
        (ms0, cpu0), (ms1, cpu1) = med['theirs'], med['ours']
        print(f'fused SSL loss, training batch, stride {stride} (the pass training runs, '
              f'forward+backward): {ms0:.1f} -> {ms1:.1f} ms ({ms0 / ms1:.2f}x; cpu '
              f'{cpu0:.1f} -> {cpu1:.1f} ms, {cpu0 / cpu1:.2f}x); loss '
              f'{(abs(l1 - l0) / l0).item():.1e}, '
              f'grad {((g1 - g0).abs().max() / g0.abs().max()).item():.1e} relative')


def windows_per_pixel(mask, window=WINDOW):
    """Masked pixels times window^2 over the pixels their windows cover: how many windows
    hold a covered pixel on average (the backward's choice of way looks at this per band)."""
    import torch.nn.functional as F

    covered = F.max_pool2d(mask.float(), window, stride=1, padding=window // 2)
    return mask.sum().item() * window * window / max(covered.sum().item(), 1)


def ways(repeat, cflags=''):
    """The backward forced one pixel at a time (way 0) and shared between pixels (way 1), and
    as chosen per band (auto), interleaved, on masks of growing overlap. cflags: extra
    compiler flags for a build of the op of its own (e.g. -mno-avx512f: the AVX2 kernels)."""
    import torch
    from loss.ssl import edge_mask

    ext = build_checkout(cflags)
    image = make_case('random')[0]
    cases = []
    for percent in (1, 2, 4, 6, 10, 25):
        cases.append((f'{percent}% random mask, 1x3x128x128', image,
                      random_mask(128 * 128 * percent // 100)))
    cases.append((CASES['edges'], *make_case('edges')))
    hr = train_batch_hr()
    for stride in (3, 1):
        cases.append((f'training batch, stride {stride}', hr / 255, edge_mask(hr, stride=stride)))
    print(f'backward by way ({torch.get_num_threads()} threads; median ms of {repeat} '
          f'interleaved calls; extra compiler flags: {cflags or "none"}); windows: masked '
          'pixels x window^2 / pixels their windows cover, over the image (the kernel decides '
          f'per band of <= 32 rows, whose figure is lower); {machine_kind(ext)}')
    print(f'{"case":40s} {"N":>5s} {"windows":>8s} {"per pixel":>10s} {"shared":>8s} '
          f'{"ratio":>6s} {"auto":>8s}')
    for title, img, mask in cases:
        padded, pos, upstream = op_inputs(img, mask)

        def backward(way):
            def call():
                start = time.perf_counter()
                ext.backward(padded, pos, upstream, SEARCH, WINDOW, way=way)
                return ((time.perf_counter() - start) * 1e3,)
            return call

        med = {way: m[0] for way, m in interleaved({way: backward(way) for way in (0, 1, -1)},
                                                   repeat).items()}
        print(f'{title:40s} {pos.shape[0]:5d} {windows_per_pixel(mask):8.2f} {med[0]:10.2f} '
              f'{med[1]:8.2f} {med[0] / med[1]:5.2f}x {med[-1]:8.2f}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=5, help='warm runs timed per method')
    parser.add_argument('--unfold_repeat', type=int, default=1,
                        help='warm runs of the unfold formulation (0: time the cold run)')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--skip_unfold', action='store_true', help='measure the op only')
    parser.add_argument('--train', action='store_true',
                        help='also time the SSL loss on a 16x3x96x96 training batch')
    parser.add_argument('--cuda', action='store_true',
                        help='GPU figures (not written yet; says whether CUDA is available)')
    parser.add_argument('--against', metavar='REV',
                        help="time this kernel against git revision REV's, side by side")
    parser.add_argument('--ways', action='store_true',
                        help='time the two ways of the backward (per pixel, shared) by overlap')
    parser.add_argument('--cflags', default='',
                        help="with --ways or --against: extra compiler flags for the op, e.g. "
                             "'-mno-avx512f' (AVX2 kernels) or '-march=x86-64' (4-lane vectors)")
    parser.add_argument('--worker', nargs=2, metavar=('CASE', 'METHOD'), help=argparse.SUPPRESS)
    parser.add_argument('--out', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.worker:
        worker(*args.worker, args.repeat, args.out)
        return 0
    if args.against:
        against(args.against, args.repeat, args.cflags)
        return 0
    if args.ways:
        ways(args.repeat, args.cflags)
        return 0
    if args.cuda:
        import torch
        if not torch.cuda.is_available():
            print('CUDA is unavailable here (torch.cuda.is_available() is False); '
                  'run without --cuda for the CPU figures')
        else:
            print('the CUDA benchmark is not written yet; run without --cuda for the CPU figures')
        return 0

    import torch
    load = ', '.join(f'{x:.1f}' for x in os.getloadavg())
    print(f'torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads, '
          f'{os.cpu_count()} CPUs (load average {load}); search {SEARCH}, window {WINDOW}; '
          'forward+backward')
    print(f'machine: {machine_kind()}')
    flops = floor_flops(1, 3, 128, 128)
    print(f'box-sum floor of one 1x3x128x128 case: {flops / 1e6:.0f} Mflop')
    print(f'{"case":40s} {"N":>5s} {"method":>7s} {"ms":>10s} {"cpu ms":>10s} '
          f'{"extra peak MB":>14s} {"first run ms":>13s} {"floor GF/s":>11s}')
    with tempfile.TemporaryDirectory() as tmp:
        for case, title in CASES.items():
            op, op_file = measure(case, 'op', args.repeat, args.threads, tmp)
            print(f'{title:40s} {op["n"]:5d} {"op":>7s} {op["ms"]:10.1f} {op["cpu_ms"]:10.1f} '
                  f'{op["extra_mb"]:14.1f} {op["cold_ms"]:13.1f} {flops / op["ms"] / 1e6:11.2f}')
            if args.skip_unfold:
                continue
            un, un_file = measure(case, 'unfold', args.unfold_repeat, args.threads, tmp)
            print(f'{"":40s} {"":5s} {"unfold":>7s} {un["ms"]:10.1f} {un["cpu_ms"]:10.1f} '
                  f'{un["extra_mb"]:14.1f} {un["cold_ms"]:13.1f} {flops / un["ms"] / 1e6:11.3f}')
            a, b = torch.load(op_file), torch.load(un_file)
            d_err = ((a['d'] - b['d']).abs().max() / b['d'].abs().max()).item()
            g_err = ((a['grad'] - b['grad']).abs().max() / b['grad'].abs().max()).item()
            print(f'{"":40s} {"":5s} {"ratio":>7s} {un["ms"] / op["ms"]:9.0f}x '
                  f'{un["cpu_ms"] / op["cpu_ms"]:9.0f}x '
                  f'{un["extra_mb"] / max(op["extra_mb"], 0.1):13.0f}x   '
                  f'(max rel. difference op vs unfold: D {d_err:.1e}, grad {g_err:.1e})')
    if args.train:
        t = train_batch_figures(args.repeat)
        rate = floor_flops(16, 3, 96, 96) / t['op_ms'] / 1e6
        print(f'training batch 16x3x96x96 (Set5 crops), edge mask stride 3, N = {t["n"]}: '
              f'edge mask {t["mask_ms"]:.1f} ms, op forward+backward {t["op_ms"]:.1f} ms '
              f'(floor {floor_flops(16, 3, 96, 96) / 1e9:.2f} Gflop, {rate:.2f} GF/s), '
              f'SSL loss forward+backward {t["loss_ms"]:.1f} ms (cpu {t["loss_cpu_ms"]:.1f} ms; '
              f'in two steps, op calls then graph_loss, alternating with it: {t["two_step_ms"]:.1f} ms); '
              f'{machine_kind()}')
    return 0


if __name__ == '__main__':
    import utility
    sys.exit(utility.run_cli(main, 'ssl_op.py'))
