"""Real-ESRGAN's recipe pieces: the U-Net SN discriminator (UGAN), the multi-layer
perceptual term (PERCEPTUAL) and the RealESRGAN_SSL template."""
import importlib.util
import sys
import types

import pytest
import torch

import loss
import option
import utility
from loss import _vgg
from discriminator._unet_sn import UNetDiscriminatorSN
from loss.perceptual import PerceptualLoss


def _basicsr_discriminator_module():
    """basicsr/archs/discriminator_arch.py imported alone (its package needs torchvision)."""
    spec = importlib.util.find_spec('basicsr')
    if spec is None or not spec.submodule_search_locations:
        pytest.skip('basicsr is not installed')
    registry = types.ModuleType('basicsr.utils.registry')
    registry.ARCH_REGISTRY = types.SimpleNamespace(register=lambda **_: (lambda cls: cls))
    saved = sys.modules.get('basicsr.utils.registry')
    sys.modules['basicsr.utils.registry'] = registry
    try:
        path = f'{spec.submodule_search_locations[0]}/archs/discriminator_arch.py'
        module_spec = importlib.util.spec_from_file_location('basicsr_discriminator_arch', path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop('basicsr.utils.registry', None)
        else:
            sys.modules['basicsr.utils.registry'] = saved
    return module


def test_unet_discriminator_is_basicsrs():
    ref_module = _basicsr_discriminator_module()
    ref = ref_module.UNetDiscriminatorSN(3, num_feat=16, skip_connection=True)
    ours = UNetDiscriminatorSN(3, n_feats=16)
    assert list(ref.state_dict()) == list(ours.state_dict())      # BasicSR key layout
    assert {k for k in ours.state_dict() if k.startswith('conv1.')} == {
        'conv1.weight_orig', 'conv1.weight_u', 'conv1.weight_v'}
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.eval()
    ours.eval()
    x = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-6)
        assert ours(x).shape == (2, 1, 32, 40)
    with pytest.raises(ValueError, match='multiples of 8'):
        ours(torch.rand(1, 3, 30, 32))


def _args(*flags):
    return option.parse_args(['--patch_size', '32', *flags])


def test_ugan_loads_released_layout_weights(tmp_path):
    ref = _basicsr_discriminator_module().UNetDiscriminatorSN(3, num_feat=64)
    path = tmp_path / 'netD.pth'
    torch.save({'params': ref.state_dict()}, path)       # as RealESRGAN_x4plus_netD.pth
    term = loss.Loss(_args('--loss', '1*UGAN', '--d_pre_train', str(path))).terms['UGAN']
    for k, v in ref.state_dict().items():
        assert torch.equal(term.discriminator.state_dict()[k], v), k
    wrong = tmp_path / 'vgg_d.pth'
    torch.save({'params': {'conv0_0.weight': torch.zeros(1)}}, wrong)
    with pytest.raises(utility.UserError, match='does not fit UNetDiscriminatorSN'):
        loss.Loss(_args('--loss', '1*UGAN', '--d_pre_train', str(wrong)))
    with pytest.raises(utility.UserError, match='multiple of 8'):
        loss.Loss(option.parse_args(['--patch_size', '36', '--loss', '1*UGAN']))


def test_ugan_trains_its_discriminator_on_pixel_logits():
    term = loss.Loss(_args('--loss', '1*UGAN')).terms['UGAN']
    before = {k: v.clone() for k, v in term.discriminator.state_dict().items()}
    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 255
    sr = (hr + 10 * torch.randn(2, 3, 32, 32)).requires_grad_()
    value = term(sr, hr)
    value.backward()
    d = term.discriminator
    d.eval()        # spectral norm with the u, v of the generator pass (no further iteration)
    with torch.no_grad():
        logits = d(sr.detach() / 255)
    # generator loss: mean BCE of the per-pixel logits against "real", after the D update
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits,
                                                                    torch.ones_like(logits))
    assert value.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)
    assert sr.grad.abs().sum() > 0
    assert any(not torch.equal(before[k], v) for k, v in d.state_dict().items())


def test_perceptual_is_the_weighted_sum_of_single_layer_vgg_terms(vgg_file):
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 32, 32) * 255
    sr = hr + 12 * torch.randn_like(hr)
    for conv, name in (('22', 'conv2_2'), ('54', 'conv5_4')):
        one = PerceptualLoss(str(vgg_file), layer_weights={name: 1.0})(sr, hr)
        ref = _vgg.VGGLoss(conv, str(vgg_file), criterion='l1')(sr, hr)
        assert one.item() == pytest.approx(ref.item(), rel=1e-5)
    full = PerceptualLoss(str(vgg_file))
    parts = {n: PerceptualLoss(str(vgg_file), layer_weights={n: 1.0})(sr, hr).item()
             for n in full.layer_weights}
    expected = sum(full.layer_weights[n] * parts[n] for n in parts)
    assert full(sr, hr).item() == pytest.approx(expected, rel=1e-5)
    assert full.layer_weights == {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1.0,
                                  'conv4_4': 1.0, 'conv5_4': 1.0}


def test_realesrgan_ssl_template():
    args = option.parse_args(['--template', 'RealESRGAN_SSL'])
    # 12 per GPU x 4 GPUs (the repository's demo.sh)
    assert (args.model, args.scale, args.patch_size, args.batch_size) == ('RRDBNet', [4], 256, 48)
    assert args.loss == '1*L1+1*PERCEPTUAL+0.1*UGAN+1000*SSL' and args.vgg_criterion == 'l1'
    assert (args.degradation, args.degradation_pool, args.ssl_stride) == ('realesrgan_ssl', 180, 1)
    assert (args.epochs, args.decay, args.gamma, args.lr, args.betas) == (
        150, [100], 0.5, 1e-4, (0.9, 0.99))
    assert args.ema_decay == 0
    assert option.parse_args(['--template', 'RealESRGAN_SSL', '--ssl_stride', '3']).ssl_stride == 3
