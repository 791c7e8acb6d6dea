"""Writes tests/data/fid_reference.pt: pytorch-fid's Inception features and BasicSR's FID, for
tests without those packages.

    pip install --no-deps pytorch-fid basicsr
    python tests/reference/make_fid_fixture.py

Random weights in pt_inception's layout (``torchvision_standin.random_fid_inception_state(seed)``,
regenerated from the seed by the test), six seeded uint8 images of 40x56, pytorch-fid's
``InceptionV3([3])`` features of them (input k / 255, its own resize to 299 and 2x - 1), and
BasicSR's ``calculate_fid`` of the first 64 feature dimensions of images 0-2 against 3-5 (a
small covariance, so the test is quick; the 2048-d path is the same function).
"""
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tests'))
import official_basicsr  # noqa: E402
import official_fid  # noqa: E402
import torchvision_standin  # noqa: E402

SEED = 28


def main():
    with tempfile.TemporaryDirectory() as home:
        os.environ['TORCH_HOME'] = home
        torchvision_standin.write_fid_inception(Path(home) / 'hub' / 'checkpoints', SEED)
        module, fid = official_fid.inception_module(), official_basicsr.fid_module()
        if module is None or fid is None:
            sys.exit('needs pytorch-fid and basicsr (pip install --no-deps pytorch-fid basicsr)')
        net = module.InceptionV3([3]).eval()
        images = torch.randint(0, 256, (6, 3, 40, 56), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(SEED))
        with torch.no_grad():
            features = net(images.float() / 255)[0].flatten(1)
    f = features.double().numpy()[:, :64]
    a, b = f[:3], f[3:]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        value = fid.calculate_fid(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                                  np.cov(b, rowvar=False))
    torch.save({'seed': SEED, 'images': images, 'features': features.float(),
                'fid_64': float(value)}, REPO / 'tests' / 'data' / 'fid_reference.pt')
    print('fid_64', value)


if __name__ == '__main__':
    main()
