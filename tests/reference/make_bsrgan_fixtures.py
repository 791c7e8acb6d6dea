"""Write tests/data/bsrgan_official.pt: the official BSRGAN code's outputs on small seeded inputs.

    SSL_OFFICIAL=/path/to/SSL/GAN-Based-SR python tests/reference/make_bsrgan_fixtures.py

(see bsrgan_official.py for the snapshot folder; OpenCV must be importable).  The fixture holds
the inputs and the official outputs of ``fspecial('gaussian')``, ``anisotropic_Gaussian``,
``shift_pixel`` (with the interp2d stand-in), ``imresize_np`` at 1/2, and the random weights
(official layout), input and output of ``network_rrdbnet.RRDBNet`` (nf 8, nb 1, gc 4, x4) and
``network_discriminator.Discriminator_UNet`` (ndf 4); tests/test_bsrgan.py and
tests/test_bsrgan_recipes.py compare the project against it without the snapshot.
"""
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent / 'src'))

import bsrgan_official  # noqa: E402
from test_bsrgan_recipes import _official_module  # noqa: E402

OUT = HERE.parent / 'data' / 'bsrgan_official.pt'


def main():
    o = bsrgan_official.load()
    if o is None:
        print('make_bsrgan_fixtures.py: error: set SSL_OFFICIAL and install OpenCV',
              file=sys.stderr)
        return 2
    b = o.blindsr
    data = {'fspecial': [], 'anisotropic': [], 'shift_pixel': []}
    for size, sigma in ((3, 0.4), (7, 1.3), (9, 2.1), (5, 0.05)):
        data['fspecial'].append((size, sigma, torch.from_numpy(b.fspecial('gaussian', size, sigma))))
    for size, theta, l1, l2 in ((5, 0.3, 1.2, 0.1), (9, 2.9, 0.05, 1.1), (7, 1.0, 0.7, 0.7)):
        data['anisotropic'].append((size, theta, l1, l2, torch.from_numpy(
            b.anisotropic_Gaussian(ksize=size, theta=theta, l1=l1, l2=l2))))
    for size, sigma, sf in ((3, 0.3, 4), (5, 0.9, 2), (7, 1.0, 4), (9, 0.6, 4)):
        k = b.fspecial('gaussian', size, sigma)
        data['shift_pixel'].append((size, sigma, sf, torch.from_numpy(b.shift_pixel(k.copy(), sf))))
    rng = np.random.default_rng(0)
    img = rng.random((20, 18, 3)).astype(np.float32)
    data['imresize_np'] = (torch.from_numpy(img), torch.from_numpy(o.util.imresize_np(img, 1 / 2,
                                                                                      True)))
    torch.manual_seed(0)
    rrdb = _official_module('official_network_rrdbnet', 'models/network_rrdbnet.py')
    net = rrdb.RRDBNet(in_nc=3, out_nc=3, nf=8, nb=1, gc=4, sf=4).eval()
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        data['rrdbnet'] = (net.state_dict(), x, net(x))
    disc = _official_module('official_network_discriminator', 'models/network_discriminator.py')
    d = disc.Discriminator_UNet(input_nc=3, ndf=4).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        data['discriminator'] = (d.state_dict(), x, d(x))
    torch.save(data, OUT)
    print(f'wrote {OUT} ({OUT.stat().st_size} bytes)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
