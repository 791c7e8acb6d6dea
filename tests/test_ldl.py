"""Loss type LDL (src/loss/ldl.py): the artifact map against BasicSR's
get_refined_artifact_map and an independent unfold form, the term, and its need of EMA."""
import pytest
import torch
import torch.nn.functional as F

import loss
import official_ssl
from cli import assert_user_error, run_main
from conftest import TINY, make_args
from loss.ldl import LDLLoss, artifact_map


def _images(seed=0, size=(2, 3, 30, 26)):
    gen = torch.Generator().manual_seed(seed)
    hr = torch.rand(size, generator=gen)
    sr = (hr + 0.05 * torch.randn(size, generator=gen)).clamp(0, 1)
    ema = (hr + 0.04 * torch.randn(size, generator=gen)).clamp(0, 1)
    return sr, ema, hr


def _by_definition(sr, ema, hr, ksize):
    """The map written out with unfold (on [0, 1] images), as LDL defines it."""
    r = (hr - sr).abs().sum(1, keepdim=True)
    r_ema = (hr - ema).abs().sum(1, keepdim=True)
    pad = ksize // 2
    windows = F.unfold(F.pad(r, (pad,) * 4, mode='reflect'), ksize)    # [B, k*k, H*W]
    local = windows.var(dim=1, unbiased=True).view_as(r)
    patch = r.flatten(1).var(dim=1, unbiased=True).view(-1, 1, 1, 1) ** 0.2
    return torch.where(r < r_ema, torch.zeros_like(r), patch * local)


@pytest.mark.parametrize('rgb_range', [255, 1])
def test_artifact_map_follows_its_definition(rgb_range):
    sr, ema, hr = _images()
    ours = artifact_map(sr * rgb_range, ema * rgb_range, hr * rgb_range, 7, rgb_range)
    assert torch.allclose(ours, _by_definition(sr, ema, hr, 7), rtol=1e-4, atol=1e-9)
    assert (ours == 0).any() and (ours > 0).any()


@pytest.mark.parametrize('rgb_range', [255, 1])
def test_artifact_map_and_term_equal_basicsrs(rgb_range):
    text = official_ssl.basicsr_text('losses/loss_util.py')
    if text is None:
        pytest.skip('basicsr (pip install --no-deps basicsr) is not installed')
    official = official_ssl.exec_official(text, 'basicsr.losses.loss_util')
    sr, ema, hr = _images(seed=1)
    sr_ref = sr.clone().requires_grad_()
    ref_map = official.get_refined_artifact_map(hr, sr_ref, ema, 7)
    sr_ours = (sr * rgb_range).requires_grad_()
    ours_map = artifact_map(sr_ours, ema * rgb_range, hr * rgb_range, ksize=7,
                            rgb_range=rgb_range)
    assert torch.allclose(ours_map, ref_map, rtol=1e-4, atol=1e-9)
    # the term as ldlssl_model.py computes it (L1Loss, weight 1), gradients included
    ref = F.l1_loss(ref_map * sr_ref, ref_map * hr)
    ours = LDLLoss(rgb_range=rgb_range)(sr_ours, hr * rgb_range, ema * rgb_range)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-4)
    ref.backward()
    ours.backward()
    assert torch.allclose(sr_ours.grad * rgb_range, sr_ref.grad, rtol=1e-3, atol=1e-9)


def test_composite_hands_the_ema_output_and_keeps_the_official_value():
    sr, ema, hr = _images(seed=2, size=(2, 3, 32, 32))
    values = []
    for flags in (['--rgb_range', '255'], ['--rgb_range', '1'], ['--rgb_range', '255',
                                                                   '--loss_range', '1']):
        composite = loss.Loss(make_args('--loss', '1*LDL', '--ema_decay', '0.9', *flags))
        assert composite.needs() == ('sr_ema',)
        r = composite.range / composite.factor
        values.append(composite(sr * r, hr * r, sr_ema=ema * r).item())
    assert values[0] == pytest.approx(values[1], rel=1e-5)
    assert values[0] == pytest.approx(values[2], rel=1e-5)


def test_ldl_without_ema_is_refused(tmp_path, tiny_data):
    proc = run_main([*TINY, '--scale', '2', '--loss', '1*L1+1*LDL', '--patch_size', '32',
                     '--data_train', 'Sample', '--data_test', 'Tiny', '--dir_data', tiny_data,
                     '--epochs', '1', '--save', 'ldl'], exp_root=tmp_path)
    assert_user_error(proc, 'LDL', 'sr_ema', '--ema_decay')
