"""Training sets of the BasicSR recipes, read from the sub-images ``src/prepare_data.py``
writes once (helper of df2k.py, ost.py).

Layout under ``--dir_data``: ``<NAME>/multiscale_HR_sub_512/*.png`` (HR sub-images of
512x512); LR images are made from them with MATLAB-compatible bicubic downscaling and
cached, as for any set without LR files (see ``_srdata``).  Training sets only: they are
not benchmarks (metrics follow EDSR-PyTorch: RGB, shave scale + 6).
"""
from pathlib import Path

import utility
from data import _srdata

SUBFOLDER = 'multiscale_HR_sub_512'


class PreparedSet(_srdata.SRData):
    def __init__(self, args, name, train, rank=0):
        super().__init__(args, name, train, rank)
        folder = (Path(args.dir_data) / name / SUBFOLDER).resolve()
        paths = _srdata.list_images(folder) if folder.is_dir() else []
        if not paths:
            import prepare_data
            hint = prepare_data.SOURCES[name][1].format(d=args.dir_data)
            raise utility.UserError(
                f'{name} sub-images not found in {folder}; {hint}, then run once: python '
                f'src/prepare_data.py {name} --dir_data {args.dir_data}')
        self.hr_paths = paths
        self.lr_paths = [[None] * len(paths) for _ in self.scale]
        self.cache_id = f'{name}_{_srdata.short_hash(folder)}'
        self.finish_setup()
