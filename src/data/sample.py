"""Sample: a small embedded training set from the photos bundled with scikit-image.

So that ``--data_train Sample`` trains on a fresh clone with no dataset on disk.  Only
images that ship inside the scikit-image package are used (no download); a photo that
fails to load in a given scikit-image version is skipped.  Natural photos: astronaut,
camera (gray), chelsea, coffee, rocket, coins (gray), moon (gray) and the left view of
stereo_motorcycle.  Grayscale photos are replicated to RGB (``--n_colors 3``).  LR images
are made in memory with MATLAB-compatible bicubic ``imresize(1/s)`` rounded to 8 bit.
As a test set (``--data_test Sample``) it gives the same images whole; not a benchmark.
"""
import functools

import numpy as np

import utility
from data import _srdata

NAME = 'Sample'
PHOTOS = ('astronaut', 'camera', 'chelsea', 'coffee', 'rocket', 'coins', 'moon',
          'stereo_motorcycle')


@functools.lru_cache(maxsize=1)
def load_photos():
    """((name, uint8 [H, W, 1|3]), ...) of the bundled photos that load offline."""
    import skimage.data
    photos = []
    for name in PHOTOS:
        try:
            img = getattr(skimage.data, name)()
        except Exception:       # not bundled in this version (would need a download)
            continue
        if isinstance(img, tuple):
            img = img[0]
        img = np.asarray(img)
        if img.dtype != np.uint8:
            continue
        if img.ndim == 2:
            img = img[..., None]
        photos.append((name, np.ascontiguousarray(img[..., :3])))
    return tuple(photos)


@functools.lru_cache(maxsize=8)
def _lr_images(scale):
    return tuple(_srdata.bicubic_lr(img, scale) for _, img in load_photos())


class Sample(_srdata.SRData):
    def __init__(self, args, name, train, rank=0):
        super().__init__(args, name, train, rank)
        photos = load_photos()
        if not photos:
            raise utility.UserError('Sample: none of the scikit-image photos could be loaded; '
                                    'reinstall scikit-image or use another --data_train')
        self.image_names = [n for n, _ in photos]
        for s in ([] if self.hr_only else self.scale):   # before DataLoader workers fork,
            _lr_images(s)                                  # so they share the result
        self.finish_setup()

    def load_hr(self, i):
        return load_photos()[i][1]

    def load_lr(self, i, idx_scale, hr=None):
        return _lr_images(self.scale[idx_scale])[i]


def make_dataset(args, name, train, rank=0):
    return Sample(args, name, train, rank)
