"""Demo: every image of ``--dir_demo`` as an LR input, no HR, for ``--test_only --save_results``.

Items are ``(lr, hr, name)`` with lr the image itself ([C, H, W] in [0, rgb_range]) and
hr an empty tensor (``torch.empty(0)``; batched: shape [1, 0]), so no metric is computed.
An unreadable file is skipped (``SkippedItem``) and reported at the end of the run.
The images are read every time (never cached): one's own images change often.
"""
from collections import Counter
from pathlib import Path

import torch

import utility
from data import _image, _srdata
from data._loader import SkippedItem

NAME = 'Demo'
LR_INPUT = True      # its images are the LR inputs, whatever --degradation says


class Demo(_srdata.SRData):
    def __init__(self, args, name, train, rank=0):
        super().__init__(args, name, train, rank)
        if train:
            raise utility.UserError('Demo has no HR images and cannot be a training set; use it '
                                    'with --data_test Demo --test_only')
        folder = Path(args.dir_demo).resolve()
        if not folder.is_dir():
            raise utility.UserError(f'--dir_demo {folder} does not exist; point it at a folder '
                                    'of images')
        self.lr_files = _srdata.list_images(folder)
        if not self.lr_files:
            raise utility.UserError(f'--dir_demo {folder} holds no image files '
                                    f'({", ".join(_image.IMAGE_EXTENSIONS)})')
        # img.jpg and img.png both give results: a stem shared by several files keeps
        # its extension in the name (img.jpg, img.png), so neither overwrites the other.
        stems = Counter(p.stem for p in self.lr_files)
        self.image_names = [p.stem if stems[p.stem] == 1 else p.name for p in self.lr_files]
        self.finish_setup()

    def __getitem__(self, i):
        # An unreadable image is skipped, not fatal: the loader collects the message and
        # the run lists the skipped files at its end (exit status 2).
        try:
            lr = _image.read_image(self.lr_files[i])
        except utility.UserError as e:
            return SkippedItem(str(e))
        lr = _image.set_channels(lr, self.n_colors)
        return _image.to_tensor(lr, self.rgb_range), torch.empty(0), self.image_names[i]


def make_dataset(args, name, train, rank=0):
    return Demo(args, name, train, rank)
