"""Every command of demo.sh, active or commented, runs on tiny settings.

The commands are read from demo.sh itself, so the test follows the file: its flags are kept
and tiny settings are appended (the command line's last value wins): one-block models, one
epoch of one batch, 8-pixel LR patches, a tiny DIV2K and benchmark folders of one 48x48
image, and ``--pre_train`` files either made by an earlier command of the file (the x3/x4
fine-tuning from x2) or random weights in the command's layout (``download`` and weights
that no command makes).  The python commands run one after another in one subprocess
(``main.main(argv)``, exit status and stderr per command) to pay torch's import once; the
torchrun command runs under torchrun with 2 CPU processes.
"""
import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cli import REPO, run_main

DEMO = REPO / 'demo.sh'
SIZE = 48   # test image side: a multiple of 2, 3 and 4


def demo_commands():
    """[(launcher, argv)] of every `python src/main.py` / `torchrun ... src/main.py` line."""
    text = DEMO.read_text().replace('\\\n', ' ')
    found = []
    for line in text.splitlines():
        line = re.sub(r'^\s*#\s*', '', line.strip())
        m = re.match(r'(python|torchrun)\s(.*?)\bsrc/main\.py\s(.*)$', line)
        if m:
            found.append((m.group(1), shlex.split(m.group(3))))
    return found


def _value(argv, flag, default=None):
    return argv[len(argv) - 1 - argv[::-1].index(flag) + 1] if flag in argv else default


def tiny(argv, data, exp, weights_for):
    """argv with tiny settings appended and paths replaced; None when a --pre_train is
    produced by a command that has not run yet."""
    import option
    argv = list(argv)
    for i, token in enumerate(argv[:-1]):
        if token == '--dir_data':
            argv[i + 1] = str(data)
        if token == '--vgg_weights':
            argv[i + 1] = str(weights_for('vgg'))
    sizes = ['--n_resblocks', '1', '--n_feats', '8', '--n_resgroups', '1', '--reduction', '4',
             '--G0', '8', '--RDNconfig', 'A', '--n_rrdb', '1', '--rrdb_growth', '4']
    parsed = option.parse_args(argv + sizes)
    scales = parsed.scale
    # One scale: HR patch of 8 LR pixels (32 for the VGG54 of the generative recipe);
    # several (MDSR): the LR side.
    vgg = any(t.startswith('VGG') for _, t in parsed.loss_terms)
    patch = 8 if len(scales) > 1 else max(8 * scales[0], 32 if vgg else 0)
    # SSL's windows shrink to fit the patch; its flags only where SSL is a term (they are
    # refused elsewhere).
    ssl = ['--ssl_search', '5', '--ssl_window', '3'] if any(
        t == 'SSL' for _, t in parsed.loss_terms) else []
    extra = sizes + ['--dir_data', str(data), '--epochs', '1', '--test_every', '1',
                     '--batch_size', '2', '--patch_size', str(patch), *ssl, '--n_threads', '0']
    if getattr(parsed, 'discriminator', '') not in ('', 'vgg', 'unet'):
        # A fixed-input discriminator (the recipes' vgg128, ...) wants its own patch size;
        # the adaptive one stands in at the tiny patch (tests/test_recipes.py runs the real).
        extra += ['--discriminator', 'vgg']
    if '--pre_train' in argv:
        i = argv.index('--pre_train')
        given = argv[i + 1]
        if given.startswith('experiment/'):
            path = exp / given[len('experiment/'):]
            made_by_demo = any(_value(a, '--save') == given.split('/')[1]
                               for _, a in demo_commands())
            if not path.is_file():
                if made_by_demo:
                    return None
                path = weights_for(argv + extra)
        else:   # "download": no network in tests; random weights in the same layout
            path = weights_for(argv + extra)
        argv[i + 1] = str(path)
    return argv + extra


@pytest.fixture(scope='module')
def demo_data(tmp_path_factory):
    """Tiny DIV2K (0001-0002 train, 0801 valid), DF2K and OST sub-image folders of one image,
    and Set5/Set14/B100/Urban100 of one image."""
    root = tmp_path_factory.mktemp('demo_data')
    rng = np.random.default_rng(0)
    src = np.asarray(Image.open(REPO / 'dataset' / 'benchmark' / 'Set5' / 'HR' /
                                'butterfly.png').convert('RGB'))

    def image(k):
        y, x = rng.integers(0, src.shape[0] - SIZE, size=2)
        return Image.fromarray(src[y:y + SIZE, x:x + SIZE])
    for split, numbers in (('train', (1, 2)), ('valid', (801,))):
        folder = root / 'DIV2K' / f'DIV2K_{split}_HR'
        folder.mkdir(parents=True)
        for n in numbers:
            image(n).save(folder / f'{n:04d}.png')
    # The GAN recipes' training sets, as src/prepare_data.py leaves them (sub-images).
    for name in ('DF2K', 'OST'):
        folder = root / name / 'multiscale_HR_sub_512'
        folder.mkdir(parents=True)
        image(0).save(folder / f'{name.lower()}_s001.png')
    for name in ('Set5', 'Set14', 'B100', 'Urban100'):
        folder = root / 'benchmark' / name / 'HR'
        folder.mkdir(parents=True)
        image(0).save(folder / 'img.png')
    return root


def test_demo_sh_lists_the_recipes():
    commands = demo_commands()
    saves = [_value(a, '--save') for _, a in commands]
    # The x3/x4-from-x2 fine-tuning, test-only, SSL, MDSR/RCAN/RDN, DDP and GAN recipes.
    for name in ('demo', 'bicubic', 'edsr_baseline_x3', 'edsr_x4', 'edsr_baseline_x2_ssl_spl',
                 'mdsr', 'rcan_x2', 'rdn_x2', 'edsr_x2_ddp', 'esrgan_ssl_x4'):
        assert name in saves, name
    assert len(commands) >= 18


DRIVER = r'''
import contextlib, io, json, sys, time
sys.path.insert(0, sys.argv[1])
import main
for argv in json.loads(sys.stdin.read()):
    err = io.StringIO()
    t0 = time.time()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main.main(argv)
    print(json.dumps({'argv': argv, 'rc': rc, 'stderr': err.getvalue()[-2000:],
                      'seconds': round(time.time() - t0, 1)}), flush=True)
'''


@pytest.mark.slow
def test_every_demo_command_runs_on_tiny_settings(tmp_path, demo_data, vgg_file):
    exp = tmp_path / 'exp'
    made = []

    def weights_for(argv):
        if argv == 'vgg':
            return vgg_file
        import model as model_pkg
        import option
        args = option.parse_args([a for a in argv if a != '--test_only'])
        path = tmp_path / f'random_{len(made)}.pt'
        torch.manual_seed(len(made))
        torch.save(model_pkg.make_net(args).state_dict(), path)
        made.append(path)
        return path

    python = [a for launcher, a in demo_commands() if launcher == 'python']
    ran, results = [], []
    env = dict(os.environ, SR_EXPERIMENT_ROOT=str(exp), OMP_NUM_THREADS='2')
    while len(ran) < len(python):   # a command whose --pre_train another makes waits for it
        batch = []
        for argv in python:
            if argv in ran:
                continue
            t = tiny(argv, demo_data, exp, weights_for)
            if t is not None:
                batch.append(t)
                ran.append(argv)
        assert batch, 'a --pre_train path of demo.sh is made by no command'
        proc = subprocess.run([sys.executable, '-c', DRIVER, str(REPO / 'src')],
                              input=json.dumps(batch), capture_output=True, text=True,
                              env=env, cwd=REPO, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results += [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith('{')]
    for r in sorted(results, key=lambda r: -r['seconds'])[:5]:
        print(f"{r['seconds']:6.1f} s  {' '.join(r['argv'][:12])}")
    failed = [r for r in results if r['rc'] != 0]
    assert not failed, failed
    assert len(results) == len(python)
    for argv in python:
        save = _value(argv, '--save')
        assert (exp / save / 'metrics.json').is_file(), save
    # The x3/x4 fine-tuning from x2 named the upsampler weights it started afresh.
    for save in ('edsr_baseline_x3', 'edsr_baseline_x4', 'edsr_x3', 'edsr_x4'):
        assert 'upsampler weights' in (exp / save / 'log.txt').read_text(), save


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason='torch.distributed missing')
def test_demo_torchrun_command_runs_on_tiny_settings(tmp_path, demo_data):
    commands = [a for launcher, a in demo_commands() if launcher == 'torchrun']
    assert commands
    for argv in commands:
        launcher = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                    '--master_port', '29541']
        proc = run_main(tiny(argv, demo_data, tmp_path, None), exp_root=tmp_path,
                        launcher=launcher)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (tmp_path / _value(argv, '--save') / 'metrics.json').is_file()
