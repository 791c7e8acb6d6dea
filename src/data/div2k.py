"""DIV2K in EDSR-PyTorch's layout, selected by ``--data_range``.

Layout under ``--dir_data``::

    DIV2K/DIV2K_train_HR/0001.png                  (also DIV2K_valid_HR/0801.png)
    DIV2K/DIV2K_train_LR_bicubic/X2/0001x2.png     (also DIV2K_valid_LR_bicubic/...)

``--data_range 1-800/801-900``: training uses the images numbered 1..800, testing the
images 801..900.  A single range serves a run that trains or tests on DIV2K, not one
that does both.  Images are chosen by the number in their
file name, looked up in both the train and valid folders, so the official archives can be
unpacked as they are.  A missing LR image is made from the HR and cached.  Not a
benchmark: metrics follow EDSR-PyTorch (RGB, shave scale + 6), unless ``--div2k_benchmark``
(``--protocol ssl_paper``) measures the test images as a benchmark set (Y channel).
"""
from pathlib import Path

import utility
from data import _srdata

NAME = 'DIV2K'
_SPLITS = ('train', 'valid')


def parse_range(text, train):
    """'1-800/801-900' -> (first, last) for the training (first) or test (second) part."""
    try:
        parts = [tuple(int(v) for v in r.split('-')) for r in text.split('/')]
        if not 1 <= len(parts) <= 2 or any(len(p) != 2 or p[0] < 1 or p[1] < p[0]
                                           for p in parts):
            raise ValueError
    except ValueError:
        raise utility.UserError(f'--data_range {text!r} must be FIRST-LAST or '
                                'TRAIN_FIRST-TRAIN_LAST/TEST_FIRST-TEST_LAST, e.g. 1-800/801-900'
                                ) from None
    return parts[0] if train or len(parts) == 1 else parts[1]


class DIV2K(_srdata.SRData):
    def __init__(self, args, name, train, rank=0):
        super().__init__(args, name, train, rank)
        self.benchmark = not train and getattr(args, 'div2k_benchmark', False)
        root = (Path(args.dir_data) / 'DIV2K').resolve()
        hr_dirs = [root / f'DIV2K_{split}_HR' for split in _SPLITS]
        if not any(d.is_dir() for d in hr_dirs):
            raise utility.UserError(
                f'DIV2K not found: expected {hr_dirs[0]}/0001.png and '
                f'{root}/DIV2K_train_LR_bicubic/X{self.scale[0]}/0001x{self.scale[0]}.png; '
                'set --dir_data to the folder '
                'that holds DIV2K/')
        first, last = parse_range(args.data_range, train)
        if (not train and not args.test_only and '/' not in args.data_range
                and any(n.lower() == NAME.lower() for n in args.data_train)):
            raise utility.UserError(
                f'--data_range {args.data_range} is one range, so DIV2K would be trained and '
                f'tested on the same images; give both, e.g. --data_range 1-800/801-900')
        found = {}
        for split, hr_dir in zip(_SPLITS, hr_dirs):
            if hr_dir.is_dir():
                for p in _srdata.list_images(hr_dir):
                    if p.stem.isdigit() and first <= int(p.stem) <= last:
                        found.setdefault(int(p.stem), (split, p))
        if not found:
            raise utility.UserError(
                f'DIV2K: no HR image numbered {first}..{last} in {hr_dirs[0]} or {hr_dirs[1]}; '
                'check --data_range and --dir_data')
        chosen = [found[k] for k in sorted(found)]
        self.hr_paths = [p for _, p in chosen]
        self.lr_paths = [[_srdata.lr_file(root / f'DIV2K_{split}_LR_bicubic' / f'X{s}', p, s)
                          for split, p in chosen] for s in self.scale]
        self.cache_id = f'DIV2K_{_srdata.short_hash(root)}'
        self.finish_setup()


def make_dataset(args, name, train, rank=0):
    return DIV2K(args, name, train, rank)
