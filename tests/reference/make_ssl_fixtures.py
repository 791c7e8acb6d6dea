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


def _official_elan(root):
    """The module elan_arch (needs einops: pip install einops, in a scratch folder)."""
    text = official_ssl.ssl_repo_text('basicsr/archs/elan_arch.py', root)
    return official_ssl.exec_official(text, 'ssl_elan_arch')


# Small ELANs: both block kinds (plain and shifted windows) and shared attention, at x4 and
# x2, on LR images whose sides are not multiples of 16 (the network's own padding).
ELAN_CONFIGS = (
    dict(scale=4, img_range=255., colors=3, window_sizes=[4, 8, 16], m_elan=2, c_elan=12,
         n_share=0, r_expand=2),
    dict(scale=2, img_range=255., colors=3, window_sizes=[4, 8, 16], m_elan=4, c_elan=15,
         n_share=1, r_expand=2),
)


def elan(root):
    """Official ELAN outputs (as BasicSR tests: net(lq) on [0, 1], no pre-pad or tiles)."""
    module = _official_elan(root)
    cases = []
    for i, kwargs in enumerate(ELAN_CONFIGS):
        net = module.ELAN(**kwargs).eval()
        state = official_ssl.random_state(net.state_dict(), seed=100 + i)
        # the fixed shift kernels are part of the layout: keep the official values
        state = {k: (v if k.endswith('shift_conv.weight') else state[k])
                 for k, v in net.state_dict().items()}
        # a quieter last conv keeps most outputs inside [0, 1], where 8-bit levels differ
        state = {k: v * 0.1 if k.startswith('tail.') else v for k, v in state.items()}
        net.load_state_dict(state)
        lr = _images((1, 3, 20, 28), seed=10 + i)
        with torch.no_grad():
            sr = net(lr.float() / 255)
        cases.append({'kwargs': kwargs, 'state': state, 'lr': lr, 'sr': sr})
    return {'cases': cases}


def official_ssl_term(root, hr, sr, search=25, window=9, sigma=0.004, threshold=20.0):
    """The SSL repository's weighted SSL terms (selfsim L1 1e3 + KLDistance 1e3) as its
    models compute them (e.g. esrganssl_model.py: per image, graphs of the edge pixels,
    'pytorch' ssl_mode, stride not applied, concatenated), for hr, sr [B, 3, H, W] in [0, 1];
    the mask as generate_mask.py makes it: PIL 'L', cv2.Laplacian CV_8U, > threshold."""
    import cv2
    import numpy as np
    from PIL import Image
    stand_ins = {
        'einops': official_ssl.stub('einops', rearrange=None),
        'basicsr.losses.similarity': official_ssl.stub('basicsr.losses.similarity'),
        'basicsr.losses.similarity.similaritywrapper': official_ssl.stub(
            'basicsr.losses.similarity.similaritywrapper', compute_similarity=None)}
    util = official_ssl.exec_official(
        official_ssl.ssl_repo_text('basicsr/losses/loss_util.py', root),
        'basicsr.losses.loss_util', stand_ins)
    losses = official_ssl.exec_official(
        official_ssl.ssl_repo_text('basicsr/losses/basic_loss.py', root),
        'basicsr.losses.basic_loss',
        {'basicsr.losses.loss_util': util,
         'basicsr.archs.vgg_arch': official_ssl.stub('vgg_arch', VGGFeatureExtractor=None)})
    masks = []
    for image in (hr * 255).round().byte():
        grey = np.array(Image.fromarray(image.permute(1, 2, 0).numpy()).convert('L'))
        masks.append(torch.from_numpy(
            (cv2.Laplacian(grey, cv2.CV_8U) > threshold).astype(np.float32)))
    sr_graphs, hr_graphs = [], []
    for i in range(hr.shape[0]):
        mask = masks[i][None, None]
        if mask.sum() == 0:
            continue
        for img, out in ((sr, sr_graphs), (hr, hr_graphs)):
            out.append(util.similarity_map(
                img=img[i:i + 1].clone(), mask=mask.clone(), ssl_mode='pytorch',
                kernel_size_search=search, generalization=True, kernel_size_window=window,
                sigma=sigma).getitem())
    sr_graphs, hr_graphs = torch.cat(sr_graphs, 1), torch.cat(hr_graphs, 1)
    return (losses.L1Loss(loss_weight=1e3, reduction='mean')(sr_graphs, hr_graphs)
            + losses.KLDistanceLoss(loss_weight=1e3, reduction='mean')(sr_graphs, hr_graphs))


def ssl_term(root):
    """The official weighted SSL terms on a small pair (8-bit HR with edges, SR = HR + noise)."""
    gen = torch.Generator().manual_seed(27)
    base = torch.rand(2, 3, 6, 6, generator=gen)
    hr = torch.nn.functional.interpolate(base, size=(40, 40), mode='bilinear',
                                         align_corners=False)
    hr[:, :, 12:30, 20] = 1.0       # a line: strong edges
    hr = (hr * 255).round().byte()
    sr = (hr.float() / 255 + 0.03 * torch.randn(2, 3, 40, 40, generator=gen)).clamp(0, 1)
    value = official_ssl_term(root, hr.float() / 255, sr)
    return {'hr': hr, 'sr': sr, 'value': value}


FIXTURES = {'vgg192': vgg192, 'elan': elan, 'loss': ssl_term}


def main(argv):
    root, names = argv[0], argv[1:] or list(FIXTURES)
    for name in names:
        data = FIXTURES[name](root)
        path = DATA / f'ssl_{name}.pt'
        torch.save(data, path)
        print(f'{path}: {path.stat().st_size / 1024:.0f} KB')


if __name__ == '__main__':
    main(sys.argv[1:])
