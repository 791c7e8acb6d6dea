"""Time of the SSIM map (src/ssim.py) where the project computes it, optionally against
another git revision's ssim.py, side by side in one run.

    python bench/ssim_map.py                     # this checkout
    python bench/ssim_map.py --against 377310a   # and revision 377310a's ssim.py, interleaved

Cases: SPL's map on the 16x3x96x96 training batch (float32, zero 'same' padding) and SPL's
whole term forward+backward on it; the metrics' map (float64, valid positions) of a Y
channel of 504x504 (Set5's baby, shaved) and of 2040x1356 (a DIV2K validation image); and
the float32 valid map of those two sizes. Images are random in [0, 255] with a noisy copy
(the time does not depend on the values). Calls run in turn (ours, theirs, theirs, ours,
...: which goes first alternates), --repeat times after one warm-up round; the median per
case is printed, with the ratio and the largest difference between the two maps.
"""
import argparse
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'src'))

import torch  # noqa: E402

import ssim as ours  # noqa: E402
import utility  # noqa: E402
from _compare import commit_of, file_at, interleaved  # noqa: E402
from loss import spl as spl_module  # noqa: E402


def revision_ssim(rev):
    """(sha, module) of git revision rev's src/ssim.py, run from its text (no file)."""
    sha = commit_of(rev)
    module = types.ModuleType(f'ssim_{sha[:12]}')
    exec(compile(file_at(sha, 'src/ssim.py'), f'{sha[:12]}:src/ssim.py', 'exec'),
         module.__dict__)
    return sha, module


def pair(shape, dtype, gen):
    x = torch.rand(shape, generator=gen, dtype=torch.float64) * 255
    y = (x + 10 * torch.randn(shape, generator=gen, dtype=torch.float64)).clamp(0, 255)
    return x.to(dtype), y.to(dtype)


def cases(gen):
    """[(name, function of an ssim module returning a tensor)]."""
    hr, sr = pair((16, 3, 96, 96), torch.float32, gen)
    spl = spl_module.SPL()

    def spl_term(module):
        spl_module.ssim_maps = module     # the term's map from that module
        try:
            x = sr.clone().requires_grad_()
            spl(x, hr, 1.0).backward()
            return x.grad
        finally:
            spl_module.ssim_maps = ours

    out = [('SPL map, training batch 16x3x96x96, float32',
            lambda m: m.ssim_map(hr, sr, 255.0, padding='same')),
           ('SPL term forward+backward, same batch', spl_term)]
    for dtype, use in ((torch.float64, 'metric'), (torch.float32, 'float32')):
        for h, w in ((504, 504), (1356, 2040)):
            x, y = pair((1, 1, h, w), dtype, gen)
            out.append((f'{use} map, Y {w}x{h}, valid, {str(dtype)[6:]}',
                        lambda m, x=x, y=y: m.ssim_map(x, y, 255.0)))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--against', default='', help='time this ssim.py against git revision REV\'s')
    p.add_argument('--repeat', type=int, default=15, help='timed calls per case and version')
    args = p.parse_args(argv)
    versions = {'ours': ours}
    if args.against:
        sha, versions['theirs'] = revision_ssim(args.against)
        print(f'this checkout against {sha[:12]}\'s src/ssim.py')
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; median ms of '
          f'{args.repeat} interleaved calls')
    header = f'{"case":48} {"ours":>8}'
    if args.against:
        header += f' {"theirs":>8} {"ratio":>7}  max difference'
    print(header)
    for name, run in cases(torch.Generator().manual_seed(0)):
        results = {}

        def timed(key, module):
            def call():
                start = time.perf_counter()
                results[key] = run(module)
                return ((time.perf_counter() - start) * 1e3,)
            return call

        med = {key: m[0] for key, m in interleaved(
            {key: timed(key, module) for key, module in versions.items()}, args.repeat).items()}
        line = f'{name:48} {med["ours"]:8.1f}'
        if args.against:
            diff = (results['ours'].double() - results['theirs'].double()).abs().max().item()
            line += f' {med["theirs"]:8.1f} {med["theirs"] / med["ours"]:6.2f}x  {diff:.1e}'
        print(line, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(utility.run_cli(main, 'ssim_map.py'))
