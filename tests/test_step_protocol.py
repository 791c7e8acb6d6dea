"""The step protocol (HOUSE rules 13-15): --loss_range units, terms' NEEDS, models'
auxiliary outputs, and flags that no chosen term or model reads."""
import pytest
import torch
import torch.nn as nn

import loss
import model as model_pkg
import option
import utility
from cli import assert_user_error, run_main


def _args(*flags):
    return option.parse_args(['--patch_size', '48', '--epochs', '10', *flags])


def _pair(seed=0, rgb_range=255):
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(2, 3, 48, 48, generator=g) * rgb_range
    sr = (hr + torch.randn(2, 3, 48, 48, generator=g) * 0.05 * rgb_range).clamp(0, rgb_range)
    return sr, hr


@pytest.mark.parametrize('rgb_range', [255, 1])
def test_loss_range_1_computes_pixel_terms_on_unit_images(rgb_range):
    sr, hr = _pair(rgb_range=rgb_range)
    unit = loss.Loss(_args('--rgb_range', str(rgb_range), '--loss', '0.01*L1+2*MSE',
                           '--loss_range', '1'))
    expected = 0.01 * (sr - hr).abs().mean() / rgb_range + 2 * ((sr - hr) ** 2).mean() / rgb_range ** 2
    assert unit(sr, hr).item() == pytest.approx(expected.item(), rel=1e-5)
    assert unit.range == 1 and unit.factor == pytest.approx(1 / rgb_range)


def test_default_loss_range_keeps_edsr_pixel_units():
    sr, hr = _pair()
    plain = loss.Loss(_args('--loss', '1*L1'))
    assert plain.factor == 1
    assert plain(sr, hr).item() == pytest.approx((sr - hr).abs().mean().item(), rel=1e-6)


def test_range_normalised_terms_do_not_move_with_loss_range():
    # SPL's weights come from SSIM (range-free) times |sr - hr|: it scales like L1, while the
    # SSL graphs are built on image / rgb_range and so do not change at all.
    sr, hr = _pair()
    a = loss.Loss(_args('--loss', '1*SPL'))(sr, hr, age=1.0)
    b = loss.Loss(_args('--loss', '1*SPL', '--loss_range', '1'))(sr, hr, age=1.0)
    assert b.item() == pytest.approx(a.item() / 255, rel=1e-5)


class _NeedsAux(nn.Module):
    NEEDS = ('lr', 'noise', 'age')

    def __init__(self):
        super().__init__()
        self.seen = None

    def forward(self, sr, hr, lr, noise, age):
        self.seen = dict(lr=lr, noise=noise, age=age)
        return (sr - hr).abs().mean() * 0 + noise.mean()


def test_terms_get_what_they_declare_images_rescaled_raw_outputs_not():
    criterion = loss.Loss(_args('--loss', '1*L1', '--loss_range', '1'), raw_outputs=('noise',))
    term = _NeedsAux()
    criterion.terms['L1'] = term
    assert criterion.needs() == ('lr', 'noise', 'age')
    sr, hr = _pair()
    lr = hr[..., ::4, ::4]
    noise = torch.full((2, 3, 48, 48), 3.0)
    total = criterion(sr, hr, age=0.5, lr=lr, noise=noise, unused=torch.zeros(1))
    assert total.item() == pytest.approx(3.0)
    assert torch.allclose(term.seen['lr'], lr / 255)
    assert torch.equal(term.seen['noise'], noise) and term.seen['age'] == 0.5
    with pytest.raises(ValueError, match="needs the step input 'noise'"):
        criterion(sr, hr, age=0.5, lr=lr)


def test_a_need_the_run_cannot_offer_is_one_user_error():
    criterion = loss.Loss(_args('--loss', '1*L1'))
    criterion.terms['L1'] = _NeedsAux()
    with pytest.raises(utility.UserError, match="needs 'noise', which this run does not"):
        criterion.check_inputs(('age', 'lr'))
    criterion.check_inputs(('age', 'lr', 'noise'))


class _DictNet(nn.Module):
    """A network with an auxiliary output: training returns the dict, eval too."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x, hr=None):
        up = torch.nn.functional.interpolate(self.conv(x), scale_factor=2, mode='nearest')
        return {'sr': up, 'grad': up * 2, 'hr_seen': hr}


def test_model_wrapper_gives_the_dict_in_training_and_the_image_in_evaluation():
    wrapper = model_pkg.Model(option.parse_args(['--model', 'EDSR', '--scale', '2',
                                                 '--n_resblocks', '1', '--n_feats', '8',
                                                 '--chop', '--chop_size', '64']))
    wrapper.model = _DictNet()
    lr = torch.rand(1, 3, 20, 20) * 255
    hr = torch.rand(1, 3, 40, 40) * 255
    wrapper.train()
    out = wrapper(lr, 0, hr=hr)
    assert set(out) == {'sr', 'grad', 'hr_seen'} and out['hr_seen'] is hr
    wrapper.eval()
    with torch.no_grad():
        sr = wrapper(lr, 0)         # --chop tiles see the image only
    assert torch.is_tensor(sr) and sr.shape == (1, 3, 40, 40)
    assert torch.allclose(sr, out['sr'].detach(), atol=1e-4)


@pytest.mark.parametrize('flags, needles', [
    (['--loss', '1*L1', '--d_pre_train', 'netD.pth'], ['--d_pre_train does nothing', 'UGAN']),
    (['--loss', '1*L1', '--ssl_stride', '3'], ['--ssl_stride does nothing', 'SSL']),
    (['--loss', '1*L1+1*SSL', '--spl_max=3'], ['--spl_max does nothing', 'SPL']),
    (['--loss', '1*L1', '--vgg_crit', 'l1'], ['--vgg_criterion does nothing']),  # abbreviated
])
def test_a_flag_no_chosen_term_reads_is_refused(tmp_path, flags, needles):
    proc = run_main(['--scale', '2', '--epochs', '1', *flags], exp_root=tmp_path)
    assert_user_error(proc, *needles)


def test_flags_set_by_a_template_or_read_by_a_term_are_accepted():
    # ESRGAN_SSL sets --ssl_stride and --vgg_criterion as defaults; --loss overrides the
    # terms; defaults are never refused, only flags written on the command line.
    args = option.parse_args(['--template', 'ESRGAN_SSL', '--loss', '1*L1'])
    assert args.ssl_stride == 1 and args.loss_range == 1 and args.discriminator == 'vgg128'
    args = option.parse_args(['--loss', '1*L1+1*SSL', '--ssl_stride', '3'])
    assert args.ssl_stride == 3
