"""Weight files of every metric under their published names, for the CLI test of the eight
paper metrics and bench/metric_cost.py: random weights in the published layouts (the layouts
recorded in tests/data/ from the official definitions), NIQE's real pristine parameters."""
from pathlib import Path

import numpy as np
import torch

import official_pyiqa
import torchvision_standin as tvs

DATA = Path(__file__).resolve().parent / 'data'
MUSIQ_FILE = 'musiq_koniq_ckpt-e95806b9.pth'


def write_all_weights(folder):
    """Every weight file of the eight metrics in ``folder`` under its published name: random
    weights in the published layouts, NIQE's real pristine parameters (the fixture's)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for arch, name in tvs.FILES.items():
        torch.save(tvs.random_state(arch), folder / name)
    for name, widths in (('alex.pth', (64, 192, 384, 256, 256)),
                         ('vgg.pth', (64, 128, 256, 512, 512))):
        torch.save({f'lin{k}.model.1.weight': torch.rand(1, c, 1, 1, generator=g) / c
                    for k, c in enumerate(widths)}, folder / name)
    torch.save({'alpha': torch.rand(1, 1475, 1, 1, generator=g),
                'beta': torch.rand(1, 1475, 1, 1, generator=g)}, folder / 'weights.pt')
    niqe = np.load(DATA / 'niqe_basicsr.npz')
    np.savez(folder / 'niqe_pris_params.npz', **{k: niqe[k] for k in
                                                  ('mu_pris_param', 'cov_pris_param',
                                                   'gaussian_window')})
    tvs.write_fid_inception(folder)
    musiq = torch.load(DATA / 'musiq_reference.pt', weights_only=True)
    torch.save(official_pyiqa.random_state(musiq['layout'], 1), folder / MUSIQ_FILE)
    clip = torch.load(DATA / 'clipiqa_reference.pt', weights_only=True)
    torch.save(official_pyiqa.clip_random_state(clip['layout'], 1), folder / 'RN50.pt')
    return folder
