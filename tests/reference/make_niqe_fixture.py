"""Writes tests/data/niqe_basicsr.npz: BasicSR's NIQE of a few images, for tests without basicsr.

    pip install --no-deps basicsr && pip install opencv-python-headless
    python tests/reference/make_niqe_fixture.py

Holds BasicSR's pristine parameters (niqe_pris_params.npz's three arrays), a seeded
200x296 noisy gradient image saturated over a third of its area, and
``calculate_niqe(img_bgr, 4, 'HWC', 'y')`` of it and of the bundled Set5 HR images.
"""
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tests'))
import official_basicsr  # noqa: E402


def main():
    ref = official_basicsr.niqe_module()
    if ref is None:
        sys.exit('needs basicsr (pip install --no-deps basicsr) and opencv-python-headless')
    rng = np.random.default_rng(28)
    # Smooth colour gradients with noise, saturated (clipped at 255) over a third of the image.
    yy, xx = np.mgrid[0:200, 0:296]
    base = np.stack([xx * 1.3, yy * 1.6 + 40, (xx + yy) * 0.9], axis=2)
    synthetic = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    names, values = ['synthetic'], []
    images = [synthetic]
    for path in sorted((REPO / 'dataset' / 'benchmark' / 'Set5' / 'HR').glob('*.png')):
        names.append(path.stem)
        images.append(np.asarray(Image.open(path).convert('RGB')))
    for img in images:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            values.append(ref.calculate_niqe(img[..., ::-1].copy(), 4, input_order='HWC',
                                             convert_to='y'))
    params = np.load(Path(ref.__file__).parent / 'niqe_pris_params.npz')
    np.savez_compressed(REPO / 'tests' / 'data' / 'niqe_basicsr.npz', names=np.array(names),
                        values=np.array(values), synthetic=synthetic,
                        **{k: params[k] for k in params.files})
    print(dict(zip(names, values)))


if __name__ == '__main__':
    main()
