"""Inference time of SwinIR on one LR image, ours against the official network.

    python bench/swinir_speed.py --template SwinIR_lightweight --scale 4 --size 256 --reps 3

Any flag of src/main.py is accepted.  Ours runs through the model wrapper in eval mode (the
official test padding included); the official network (BasicSR's copy of network_swinir.py,
when basicsr is installed) gets the same random weights and main_test_swinir.py's padding.
The two are run alternately (A, B, A, B, ...) so that machine noise hits both alike; the
medians and their ratio are printed, with the largest difference of the outputs.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'src'))
sys.path.insert(0, os.path.join(HERE, '..', 'tests'))

import torch  # noqa: E402

import model as model_pkg  # noqa: E402
import option  # noqa: E402
from official_swinir import (load_official_module, official_net,  # noqa: E402
                             official_padded_forward, random_weights)


def main():
    bench = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    bench.add_argument('--size', type=int, default=256, help='LR image side')
    bench.add_argument('--reps', type=int, default=3, help='timed runs per network')
    bench.add_argument('--no_official', action='store_true', help='time ours only')
    mine, rest = bench.parse_known_args()
    args = option.parse_args(rest)
    device = torch.device('cuda' if torch.cuda.is_available() and not args.cpu else 'cpu')
    torch.manual_seed(args.seed)
    ours = model_pkg.Model(args, device).eval()
    weights = random_weights(ours.get_model().state_dict())
    ours.load(weights)
    runs = {'ours': lambda x: ours(x * args.rgb_range, 0) / args.rgb_range}
    module = None if mine.no_official else load_official_module()
    if module is not None:
        ref = official_net(module, args).to(device).eval()
        ref.load_state_dict({k: v.to(device) for k, v in weights.items()}, strict=True)
        runs['official'] = lambda x: official_padded_forward(ref, x, args.scale[0],
                                                             args.window_size)
    x = torch.rand(1, args.n_colors, mine.size, mine.size, device=device)
    print(f'{args.model} x{args.scale[0]}, embed {args.embed_dim}, depths {list(args.depths)}, '
          f'{args.upsampler}; LR {mine.size}x{mine.size}; {device}, '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}')
    times = {name: [] for name in runs}
    outputs = {}
    with torch.no_grad():
        for name, run in runs.items():  # warm-up (allocations, kernel selection)
            outputs[name] = run(x)
        for _ in range(mine.reps):
            for name, run in runs.items():
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                start = time.perf_counter()
                run(x)
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f'{name:9s} median {statistics.median(values):.3f} s  '
              f'(runs: {", ".join(f"{v:.3f}" for v in values)})')
    if 'official' in times:
        ratio = statistics.median(times['official']) / statistics.median(times['ours'])
        diff = (outputs['ours'] - outputs['official']).abs().max().item()
        print(f'official / ours: {ratio:.2f}x;  max |ours - official| = {diff:.2e} '
              f'(images in [0, 1])')


if __name__ == '__main__':
    main()
