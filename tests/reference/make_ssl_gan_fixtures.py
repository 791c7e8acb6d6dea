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


def main():
    root = official.official_root()
    if root is None:
        sys.exit('set SSL_OFFICIAL to a checkout of ChrisDud0257/SSL')
    torch.set_num_threads(2)
    out = {}
    generators(root, out)
    torch.save(out, official.FIXTURE)
    print('wrote', official.FIXTURE, official.FIXTURE.stat().st_size, 'bytes')


if __name__ == '__main__':
    main()
