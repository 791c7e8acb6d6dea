"""DiffSR (pixel-space conditional diffusion on diffusers) and the EPS term: x0 recovery and
every loss term of a step against their definitions, seeded sampling, --chop and
--self_ensemble, flag ownership, and through the CLI: exact resume, DDP, test-only."""
import json
import shutil
import sys
from pathlib import Path

import imageio.v3 as iio

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('diffusers')

import loss  # noqa: E402
import model  # noqa: E402
import option  # noqa: E402
from cli import assert_user_error, run_main  # noqa: E402
from loss.ssl import SSL  # noqa: E402
from model import diffsr  # noqa: E402

BUTTERFLY = Path(__file__).resolve().parent.parent / 'dataset/benchmark/Set5/HR/butterfly.png'
SMALL = ['--model', 'DiffSR', '--unet_channels', '8', '16', '--unet_layers', '1',
         '--diffusion_steps', '3', '--cpu']


def _net(*flags):
    args = option.parse_args([*SMALL, '--scale', '2', *flags])
    return model.Model(args, 'cpu'), args


def _batch(seed=0, b=2, h=12, w=10, scale=2):
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(b, 3, h * scale, w * scale, generator=g) * 255
    lr = torch.rand(b, 3, h, w, generator=g) * 255
    return lr, hr


def test_noise_schedule_is_the_official_one():
    # ldm's make_beta_schedule('linear', 1000, 0.00085, 0.012): linspace of sqrt(beta), squared.
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    sched = diffsr.noise_schedule()
    assert torch.allclose(sched.alphas_cumprod.double(), abar, rtol=1e-6)


def test_x0_recovery_is_predict_start_from_noise():
    net, _ = _net()
    net = net.get_model()
    torch.manual_seed(1)
    x0 = torch.rand(3, 3, 8, 8) * 2 - 1
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 500, 999])
    x_t = net.schedule.add_noise(x0, noise, t)
    # the true noise gives back x0
    assert torch.allclose(net.predict_x0(x_t, t, noise), x0, atol=2e-4)
    # any prediction: diffusers' own DDPM step computes the same pred_original_sample
    eps = torch.randn_like(x0)
    got = net.predict_x0(x_t, t, eps)
    for i in range(3):
        ref = net.schedule.step(eps[i:i + 1], int(t[i]), x_t[i:i + 1]).pred_original_sample
        assert torch.allclose(got[i:i + 1], ref, rtol=1e-5, atol=1e-4)


def test_training_step_returns_x0_estimate_of_the_drawn_noise():
    net, args = _net()
    net.train()
    lr, hr = _batch()
    torch.manual_seed(7)
    out = net(lr, 0, hr=hr)
    assert set(out) == {'sr', 'noise', 'noise_pred'}
    # Redo the step by its definition with the same global random stream.
    inner = net.get_model()
    torch.manual_seed(7)
    t = torch.randint(0, 1000, (2,))
    noise = torch.randn(hr.shape)
    assert torch.equal(out['noise'], noise)
    x0 = hr / 255 * 2 - 1
    abar = inner.schedule.alphas_cumprod[t].view(-1, 1, 1, 1).float()
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    cond = inner.condition(lr)
    eps = inner.unet(torch.cat([x_t, cond], 1), t).sample
    assert torch.allclose(out['noise_pred'], eps, atol=1e-5)
    x0_hat = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
    assert torch.allclose(out['sr'], (x0_hat + 1) * 127.5, rtol=1e-4, atol=1e-3)


def test_per_step_losses_are_their_definitions():
    """1*EPS + 0.1*L1 + 0.5*SSL with loss_range 1 (DiffSR_SSL's terms): what ddpmssl.py adds,
    on images in [0, 1], whatever --rgb_range."""
    for rgb_range in (255, 1):
        args = option.parse_args([*SMALL, '--scale', '2', '--rgb_range', str(rgb_range),
                                  '--loss', '1*EPS+0.1*L1+0.5*SSL', '--loss_range', '1',
                                  '--ssl_stride', '3', '--ssl_search', '11', '--ssl_window', '5',
                                  '--patch_size', '24'])
        net = model.Model(args, 'cpu').train()
        criterion = loss.Loss(args, net.raw_outputs)
        assert criterion.needs() == ('noise', 'noise_pred')
        img = torch.from_numpy(iio.imread(BUTTERFLY)[60:84, 60:84]).permute(2, 0, 1)
        hr = img[None].float() / 255 * rgb_range
        lr = torch.nn.functional.avg_pool2d(hr, 2)
        torch.manual_seed(3)
        out = net(lr, 0, hr=hr)
        sr = out.pop('sr')
        total = criterion(sr, hr, **out)
        got = criterion.last()
        unit_sr, unit_hr = sr / rgb_range, hr / rgb_range
        eps = F.mse_loss(out['noise_pred'], out['noise'])
        l1 = (unit_sr - unit_hr).abs().mean()
        ssl = SSL(search=11, window=5, stride=3, rgb_range=1)(unit_sr, unit_hr)
        assert got['EPS'] == pytest.approx(eps.item(), rel=1e-5)
        assert got['L1'] == pytest.approx(0.1 * l1.item(), rel=1e-5)
        assert got['SSL'] == pytest.approx(0.5 * ssl.item(), rel=1e-4, abs=1e-9)
        assert total.item() == pytest.approx(eps.item() + 0.1 * l1.item() + 0.5 * ssl.item(),
                                             rel=1e-5)


def test_sampling_repeats_with_a_seed_and_differs_between_seeds():
    lr, _ = _batch(b=2)
    net0, _ = _net('--sample_seed', '5')
    net1, _ = _net('--sample_seed', '6')
    net1.load_state_dict(net0.state_dict())
    with torch.no_grad():
        a = net0.eval()(lr, 0)
        b = net0(lr, 0)
        c = net1.eval()(lr, 0)
        # an image's noise does not depend on its batch neighbours or on what ran before
        torch.manual_seed(123)
        d = net0(lr[1:], 0)
    assert a.shape == (2, 3, 24, 20) and torch.isfinite(a).all()
    assert torch.equal(a, b)
    # batched convolutions round differently, and the sampling steps carry that on; another
    # draw of noise would move pixels by tens of levels
    assert (a[1:] - d).abs().max() < 0.5
    assert (a - c).abs().mean() > 1
    # the training random stream is untouched by sampling
    torch.manual_seed(9)
    x = torch.rand(3)
    torch.manual_seed(9)
    with torch.no_grad():
        net0(lr, 0)
    assert torch.equal(torch.rand(3), x)


@pytest.mark.parametrize('sampler', ['ddim', 'dpm'])
def test_chop_and_self_ensemble_sample_repeatably(sampler):
    lr, _ = _batch(b=1, h=30, w=26)
    results = []
    for flags in (['--chop', '--chop_size', '200'], ['--self_ensemble']):
        net, _ = _net('--diffusion_sampler', sampler, *flags)
        torch.manual_seed(0)
        net.get_model().load_state_dict(_net()[0].get_model().state_dict())
        with torch.no_grad():
            a, b = net.eval()(lr, 0), net(lr, 0)
        assert a.shape == (1, 3, 60, 52) and torch.isfinite(a).all()
        assert torch.equal(a, b)
        results.append(a)
    assert not torch.equal(results[0], results[1])


def test_flags_are_refused_for_other_models_and_eps_for_other_models(tmp_path):
    for flag in (['--unet_layers', '3'], ['--diffusion_steps', '4'], ['--sample_seed', '1']):
        proc = run_main(['--model', 'EDSR', '--test_only', *flag], exp_root=tmp_path)
        assert_user_error(proc, f'{flag[0]} does nothing for --model EDSR')
    proc = run_main(['--model', 'EDSR', '--loss', '1*EPS', '--data_train', 'Sample',
                     '--epochs', '1', '--cpu'], exp_root=tmp_path)
    assert_user_error(proc, 'loss term EPS needs', 'noise')


# ------------------------------------------------------------------ CLI runs

SSL_FLAGS = ['--ssl_stride', '3', '--ssl_search', '11', '--ssl_window', '5']


def _train(data_dir, save, epochs, *extra, loss='1*EPS+0.1*L1+0.5*SSL'):
    return [*SMALL, '--scale', '2', '--data_train', 'Sample', '--data_test', 'Tiny',
            '--dir_data', data_dir, '--patch_size', '32', '--batch_size', '4',
            '--test_every', '2', '--epochs', epochs, '--lr', '1e-3', '--n_threads', '0',
            '--loss', loss, '--loss_range', '1', *(SSL_FLAGS if 'SSL' in loss else []),
            '--save', save, *extra]


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.mark.slow
def test_resume_after_an_epoch_equals_an_uninterrupted_run(tmp_path, tiny_data):
    exp = tmp_path / 'exp'
    ema = ['--ema_decay', '0.9']
    full = run_main(_train(tiny_data, 'full', 2, *ema), exp_root=exp)
    assert full.returncode == 0, full.stderr[-3000:]
    part = run_main(_train(tiny_data, 'part', 1, *ema), exp_root=exp)
    assert part.returncode == 0, part.stderr[-3000:]
    resumed = run_main(_train(tiny_data, 'x', 2, *ema, '--load', 'part'), exp_root=exp)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'Resumed from epoch 1' in resumed.stdout
    for name in ('model_latest.pt', 'model_ema.pt'):
        a, b = _load(exp / 'full' / 'model' / name), _load(exp / 'part' / 'model' / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    ca, cb = _load(exp / 'full' / 'checkpoint.pt'), _load(exp / 'part' / 'checkpoint.pt')
    assert ca['loss_log'] == cb['loss_log']
    assert ca['metric_history'] == cb['metric_history']

    # test-only with every metric that needs no downloaded weights, twice: the same numbers
    scores = []
    for i in range(2):
        proc = run_main([*SMALL, '--scale', '2', '--data_test', 'Tiny', '--dir_data', tiny_data,
                         '--test_only', '--pre_train', exp / 'full' / 'model' / 'model_ema.pt',
                         '--metrics', 'psnr+ssim', '--save', f'test{i}', '--save_results'],
                        exp_root=exp)
        assert proc.returncode == 0, proc.stderr[-3000:]
        scores.append(json.loads((exp / f'test{i}' / 'metrics.json').read_text()))
        assert list((exp / f'test{i}').rglob('*.png'))
    assert scores[0] == scores[1]
    # compare.py shows the samples beside another run's (here: the repeat) and bicubic
    import subprocess
    fig = tmp_path / 'fig.png'
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve().parent.parent / 'src'
                                               / 'compare.py'),
                           '--runs', str(exp / 'test0'), str(exp / 'test1'), '--dataset', 'Tiny',
                           '--image', 'crop', '--box', '10,10,40,30', '--dir_data',
                           str(tiny_data), '--out', str(fig)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert fig.stat().st_size > 0 and 'test0 PSNR' in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason='torch.distributed missing')
def test_ddp_two_cpu_processes_match_one_process(tmp_path, tiny_data):
    """Each rank keeps its slice of the global batch's t and noise: 2 ranks = 1 process."""
    exp = tmp_path / 'exp'
    launcher = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                '--master_port', '29541']
    # SSL averages over each rank's masked pixels, so only per-pixel means compare exactly.
    # SGD, not Adam: in this tiny UNet (one channel per GroupNorm group) the biases added
    # before a norm get gradients that are float noise (0 in exact arithmetic), which Adam's
    # first step turns into +-lr whatever their size.
    sgd = ['--optimizer', 'SGD']
    ddp = run_main(_train(tiny_data, 'ddp', 1, *sgd, loss='1*EPS+0.1*L1'), exp_root=exp,
                   launcher=launcher)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_main(_train(tiny_data, 'single', 1, *sgd, loss='1*EPS+0.1*L1'),
                      exp_root=exp)
    assert single.returncode == 0, single.stderr[-3000:]
    a = _load(exp / 'ddp' / 'model' / 'model_latest.pt')
    b = _load(exp / 'single' / 'model' / 'model_latest.pt')
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), k
    shutil.rmtree(exp)


def _printed_interval(text):
    """(low, high): the values a number printed as ``text`` may have been rounded from."""
    half = 0.5 * 10 ** -len(text.partition('.')[2])
    return float(text) - half, float(text) + half


@pytest.mark.slow
def test_bench_prints_both_jobs_beside_edsr():
    import re
    import subprocess
    bench = Path(__file__).resolve().parent.parent / 'bench' / 'diffsr.py'
    run = subprocess.run([sys.executable, str(bench), '--iters', '1', '--warmup', '0',
                          '--unet_channels', '8', '16', '--unet_layers', '1', '--scale', '4',
                          '--patch_size', '32', '--batch_size', '2', '--diffusion_steps', '2',
                          '--n_resblocks', '2', '--n_feats', '16', '--ssl_search', '11',
                          '--ssl_window', '5', '--cpu'],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    for job in ('training step', 'one sampled image'):
        m = re.search(rf'^{job}: DiffSR ([\d.]+) s \(cpu ([\d.]+)\), EDSR ([\d.]+) s '
                      rf'\(cpu ([\d.]+)\), ratio ([\d.]+)', run.stdout, re.M)
        assert m, run.stdout
        # the ratio is of the unrounded times: it lies within what the printed digits allow
        (a, b), ratio = (_printed_interval(m.group(k)) for k in (1, 3)), float(m.group(5))
        assert a[0] / b[1] - 0.06 <= ratio <= a[1] / max(b[0], 1e-12) + 0.06, run.stdout
