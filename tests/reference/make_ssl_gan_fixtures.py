"""Write tests/data/ssl_gan_recipes.pt from the official SPSR / BebyGAN / RankSRGAN code.

    SSL_OFFICIAL=/path/to/SSL python tests/reference/make_ssl_gan_fixtures.py

SSL_OFFICIAL is a checkout of ChrisDud0257/SSL (only GAN-Based-SR/basicsr/archs and
models are read).  The official arch files run as they are (stand-ins for their imports),
the needed functions of the model files are compiled on their own (official_ssl_gan.py).
Stored: seeded inputs, each network's layout (key names and shapes, shared keys, fixed
constants) and the seed and gains of its random weights, and the official outputs.  The
tests rebuild the weights from the layout and seed (official_ssl_gan.seeded_weights) and
compare the project's code with the stored outputs.
"""
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import official_ssl_gan as official  # noqa: E402

# (arch file, class, constructor kwargs, seed, gain, shift of the last bias)
GENERATORS = {
    'spsr': ('spsr_arch', 'SPSRNet', dict(in_nc=3, out_nc=3, nf=64, nb=23, gc=32, upscale=4),
             1, 0.62, {'f_HR_conv1.0.bias': 0.5}),
    'bebygan': ('rrdbbebygan_arch', 'RRDBBebyGANNet', dict(in_nc=3, out_nc=3, nf=64, nb=23, gc=32),
                2, 0.55, {'conv_last.bias': 0.5}),
    'ranksrgan': ('ranksrgan_arch', 'RankSRGANSRResNet', dict(in_nc=3, out_nc=3, nf=64, nb=16,
                                                              upscale=4),
                  3, 0.8, {'conv_last.bias': 0.5}),
}


def generators(root, out):
    g = torch.Generator().manual_seed(10)
    lr = torch.rand(1, 3, 12, 10, generator=g)
    out['lr'] = lr
    for name, (arch, cls, kwargs, seed, gain, shift) in GENERATORS.items():
        net = getattr(official.load_arch(root, arch), cls)(**kwargs)
        layout = official.layout_of(net)
        net.load_state_dict(official.seeded_weights(layout, seed, gain, shift), strict=True)
        net.eval()
        with torch.no_grad():
            y = net(lr)
        entry = {'layout': layout, 'seed': seed, 'gain': gain, 'shift': shift}
        if isinstance(y, tuple):   # SPSR: (branch, SR, LR gradient)
            entry.update(sr=y[1], grad_branch=y[0], grad_lr=y[2])
        else:
            entry['sr'] = y
        out[name] = entry
        print(name, 'SR range', float(entry['sr'].min()), float(entry['sr'].max()),
              'std', float(entry['sr'].std()))


def test_images():
    """hr [2, 3, 48, 48] with smooth (flat) and textured halves, sr = hr + noise, lr [2, 3,
    12, 12] near hr's quarter size; all in [0, 1]."""
    g = torch.Generator().manual_seed(11)
    smooth = 0.35 + 0.3 * torch.nn.functional.interpolate(
        torch.rand(2, 3, 2, 2, generator=g), size=(48, 48), mode='bilinear', align_corners=False)
    texture = 0.15 * torch.randn(2, 3, 48, 48, generator=g)
    texture[..., :, :24] = 0
    hr = (smooth + texture).clamp(0, 1)
    sr = (hr + 0.05 * torch.randn(2, 3, 48, 48, generator=g)).clamp(0, 1)
    lr = (torch.nn.functional.avg_pool2d(hr, 4) + 0.02 * torch.randn(2, 3, 12, 12, generator=g))
    return hr, sr, lr.clamp(0, 1)


def losses(root, out):
    hr, sr, lr = test_images()
    out.update(hr=hr, sr=sr, lr_small=lr)
    beby = official.model_file_defs(root, 'bebyganssl_model', (
        'BBL', 'get_flat_mask', 'imresize', 'cubic_contribution', 'gaussian_contribution',
        'discrete_kernel', 'reflect_padding', 'padding', 'get_padding', 'get_weight',
        'reshape_tensor', 'resize_1d', 'downsampling_2d'))
    p1, sel = beby['BBL']().forward(x=sr, gt=hr)
    out['bbl'] = {'buddies': sel, 'loss': torch.nn.functional.l1_loss(p1, sel)}
    down = beby['imresize'](sr, scale=1 / 4)
    out['bp'] = {'down': down, 'loss': torch.nn.functional.l1_loss(down, lr)}
    out['flat_mask'] = beby['get_flat_mask'](img=hr, scale=1)
    print('flat fraction', float(out['flat_mask'].mean()))
    arch_grad = official.load_arch(root, 'spsr_arch').Get_gradient_nopadding()
    spsr = official.model_file_defs(root, 'spsrssl_model', ('Get_gradient', 'Get_gradient_nopadding'))
    maps = [arch_grad(sr), spsr['Get_gradient']()(sr), spsr['Get_gradient_nopadding']()(sr)]
    # the arch's operator and the model file's two are one operator
    assert all(torch.equal(maps[0], m) for m in maps[1:])
    out['grad'] = maps[0]
    rank(root, out, sr)


def rank(root, out, sr):
    """The released rank term: 3e-2 weight aside, sum(sigmoid(R(sr) - R_bias)), R_bias 0."""
    arch = official.load_arch(root, 'ranksrgan_arch')
    ranker = arch.Ranker_VGG12_296()
    layout = official.layout_of(ranker)
    entry = {'layout': layout, 'seed': 4, 'gain': 1.0, 'shift': {}}
    ranker.load_state_dict(official.seeded_weights(layout, 4))
    g = torch.Generator().manual_seed(12)
    x = torch.rand(2, 3, 32, 32, generator=g, requires_grad=True)
    ranker.eval()   # the paper's frozen ranker
    value = torch.sigmoid(ranker(x) - 0).sum()
    value.backward()
    entry.update(x_seed=12, eval_value=value.detach(), eval_grad=x.grad.clone())
    ranker.train()  # as ranksrganssl_model.py leaves it
    with torch.no_grad():
        entry['train_value'] = torch.sigmoid(ranker(x) - 0).sum()
    out['ranker'] = entry
    d = arch.Discriminator_VGG_296()
    layout = official.layout_of(d)
    d.load_state_dict(official.seeded_weights(layout, 5))
    d.eval()
    with torch.no_grad():
        logits = d(torch.rand(2, 3, 296, 296, generator=torch.Generator().manual_seed(13)))
    out['d296'] = {'layout': layout, 'seed': 5, 'input_seed': 13, 'logits': logits}


def main():
    root = official.official_root()
    if root is None:
        sys.exit('set SSL_OFFICIAL to a checkout of ChrisDud0257/SSL')
    torch.set_num_threads(2)
    out = {}
    generators(root, out)
    losses(root, out)
    torch.save(out, official.FIXTURE)
    print('wrote', official.FIXTURE, official.FIXTURE.stat().st_size, 'bytes')


if __name__ == '__main__':
    main()
