"""The benchmark scripts that README's figures come from (bench/ssl_op.py has its tests in
test_ssl_op.py, beside the op).

bench/train_step.py times the trainer's real step for two losses side by side, each batch
through both configurations with the first of the pair alternating; bench/ssim_map.py times
the SSIM map against another revision's ssim.py."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STEP_BENCH = REPO / 'bench' / 'train_step.py'
SSIM_BENCH = REPO / 'bench' / 'ssim_map.py'
TINY = ['--model', 'EDSR', '--scale', '2', '--n_resblocks', '1', '--n_feats', '8',
        '--batch_size', '2', '--patch_size', '48', '--loss', '1*L1+1000*SSL+1*SPL',
        '--ssl_stride', '3', '--compare', '1*L1']


def _load_bench():
    spec = importlib.util.spec_from_file_location('bench_train_step', STEP_BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_steps_alternate_which_configuration_goes_first(monkeypatch, capsys):
    bench = _load_bench()
    calls = []
    seconds = {'1*L1+1000*SSL+1*SPL': [0.3, 0.5, 0.4, 0.9], '1*L1': [0.2, 0.1, 0.4, 0.3]}

    def fake_step(trainer, lr_img, hr_img):
        calls.append(trainer.args.loss)
        done = sum(1 for c in calls if c == trainer.args.loss) - 1   # 0 is the warm-up
        wall = 9.0 if done == 0 else seconds[trainer.args.loss][done - 1]
        return wall, 3 * wall     # CPU time: three busy threads

    monkeypatch.setattr(bench, 'step', fake_step)
    monkeypatch.setattr(sys, 'argv', ['train_step.py', '--iters', '4'] + TINY)
    bench.main()
    a, b = '1*L1+1000*SSL+1*SPL', '1*L1'
    assert calls == [a, b, b, a, a, b, b, a, a, b]
    out = capsys.readouterr().out
    assert f'loss {a}: sec/iter: 0.4500 (cpu 1.3500)' in out   # median of 0.3, 0.5, 0.4, 0.9
    assert f'loss {b}: sec/iter: 0.2500 (cpu 0.7500)' in out
    assert f'ratio ({a}) / ({b}): 1.800 (cpu 1.800)' in out


def test_real_steps_print_both_medians_and_their_ratio():
    run = subprocess.run([sys.executable, str(STEP_BENCH), '--iters', '2'] + TINY,
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr
    lines = re.findall(r'^loss (\S+): sec/iter: ([\d.]+) \(cpu ([\d.]+)\)$', run.stdout, re.M)
    assert {name for name, _, _ in lines} == {'1*L1+1000*SSL+1*SPL', '1*L1'}
    walls = {name: float(wall) for name, wall, _ in lines}
    cpus = {name: float(cpu) for name, _, cpu in lines}
    assert all(cpu > 0 for cpu in cpus.values())
    found = re.search(r'^ratio \(.*\) / \(1\*L1\): ([\d.]+) \(cpu ([\d.]+)\)$', run.stdout,
                      re.M)
    for printed, medians in ((found[1], walls), (found[2], cpus)):
        num, den = medians['1*L1+1000*SSL+1*SPL'], medians['1*L1']
        # The printed medians are rounded to 0.1 ms, the ratio to 0.001.
        slack = num / den * (0.00005 / num + 0.00005 / den) + 0.0005
        assert abs(float(printed) - num / den) <= slack


@pytest.mark.slow
def test_ssim_bench_times_every_case_against_a_revision():
    run = subprocess.run([sys.executable, str(SSIM_BENCH), '--against', 'HEAD', '--repeat', '1'],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr
    rows = re.findall(r'^(\S.*?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+(\S+)$', run.stdout, re.M)
    assert [r[0] for r in rows] == [
        'SPL map, training batch 16x3x96x96, float32', 'SPL term forward+backward, same batch',
        'metric map, Y 504x504, valid, float64', 'metric map, Y 2040x1356, valid, float64',
        'float32 map, Y 504x504, valid, float32', 'float32 map, Y 2040x1356, valid, float32']
    for name, ours, theirs, ratio, diff in rows:
        assert float(ours) > 0 and float(theirs) > 0
        assert abs(float(ratio) - float(theirs) / float(ours)) <= 0.01 * float(ratio) + 0.01
        assert float(diff) < 1e-4, name     # HEAD's ssim.py is this one (or close to it)


def test_ssim_bench_refuses_an_unknown_revision():
    run = subprocess.run([sys.executable, str(SSIM_BENCH), '--against', 'no-such-rev'],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "ssim_map.py: error: --against: 'no-such-rev' is not a commit of this repository; "
        'give a commit, tag or branch (git log --oneline lists them)']


@pytest.mark.slow
def test_degrade_bench_times_presets_beside_each_other():
    """bench/degrade.py --beside: each preset's median on the same batches, and the ratios."""
    run = subprocess.run([sys.executable, str(REPO / 'bench' / 'degrade.py'), '--iters', '2',
                          '--degradation', 'realesrgan', '--beside', 'bsrgan', '--model', 'EDSR',
                          '--scale', '4', '--n_resblocks', '1', '--n_feats', '8',
                          '--batch_size', '2', '--patch_size', '64'],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr
    first = float(re.search(r'^degradation: ([\d.]+) s/batch', run.stdout, re.M)[1])
    other = re.search(r'^degradation bsrgan: ([\d.]+) s/batch .*ratio to realesrgan: ([\d.]+)$',
                      run.stdout, re.M)
    step = float(re.search(r'^training step: ([\d.]+) s/batch', run.stdout, re.M)[1])
    assert first > 0 and step > 0
    # printed values are rounded to 1 ms and the ratio to 0.001
    o = float(other[1])
    ratio = o / first
    assert abs(float(other[2]) - ratio) <= ratio * (0.0005 / o + 0.0005 / first) + 0.0005
    assert re.search(r'^ratio bsrgan / step: [\d.]+$', run.stdout, re.M)
    bad = subprocess.run([sys.executable, str(REPO / 'bench' / 'degrade.py'), '--degradation',
                          'realesrgan', '--beside', 'nope'], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert bad.returncode == 2 and "--beside 'nope'" in bad.stderr
