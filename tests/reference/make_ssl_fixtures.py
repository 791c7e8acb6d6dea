"""Write the fixtures of the SSL repository's own networks into tests/data/.

    python tests/reference/make_ssl_fixtures.py /path/to/ChrisDud0257-SSL  [names...]

The path is a checkout or a bare git directory of ChrisDud0257/SSL (e.g. what the fetch
tool brings).  Each fixture holds seeded inputs (as 8-bit images), random weights in the
official layout, the official network's outputs, and the constructor arguments, all made by
executing the official file (tests/official_ssl.py); the tests compare the project's
networks against them.  Small configurations keep each file to a few hundred KB.
"""
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import official_ssl  # noqa: E402

DATA = HERE.parent / 'data'


def _images(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)


def vgg192(root):
    """Discriminator_VGG_192(in_chl=3, nf=2), eval and train mode, on two 192x192 images."""
    text = official_ssl.ssl_repo_text('basicsr/archs/discriminator_arch.py', root)
    module = official_ssl.exec_official(text, 'ssl_discriminator_arch')
    net = module.Discriminator_VGG_192(in_chl=3, nf=2)
    state = official_ssl.random_state(net.state_dict(), seed=192)
    net.load_state_dict(state)
    image = _images((2, 3, 192, 192), seed=1)
    x = image.float() / 255
    with torch.no_grad():
        out_eval = net.eval()(x)
        out_train = net.train()(x)       # BatchNorm on batch statistics
    return {'kwargs': {'in_chl': 3, 'nf': 2}, 'state': state, 'image': image,
            'out_eval': out_eval, 'out_train': out_train}


FIXTURES = {'vgg192': vgg192}


def main(argv):
    root, names = argv[0], argv[1:] or list(FIXTURES)
    for name in names:
        data = FIXTURES[name](root)
        path = DATA / f'ssl_{name}.pt'
        torch.save(data, path)
        print(f'{path}: {path.stat().st_size / 1024:.0f} KB')


if __name__ == '__main__':
    main(sys.argv[1:])
