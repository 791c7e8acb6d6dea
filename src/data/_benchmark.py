"""Any benchmark folder ``<dir_data>/benchmark/<Name>/HR/*.png`` as a test (or training) set.

No list of names: Set5, Set14, B100, Urban100, Manga109 or a folder of one's own are
found the same way.  LR images are read from ``<Name>/LR_bicubic/X<s>/<stem>x<s>.png``
when present (EDSR-PyTorch's layout); otherwise they are made from the HR with
MATLAB-compatible bicubic downscaling and cached (see ``_srdata``).  ``benchmark`` is
True: metrics use Y and shave ``scale`` pixels.
"""
import utility
from data import _srdata


class BenchmarkData(_srdata.SRData):
    benchmark = True

    def __init__(self, args, name, folder, train, rank=0):
        super().__init__(args, name, train, rank)
        folder = folder.resolve()
        self.hr_paths = _srdata.list_images(folder / 'HR')
        if not self.hr_paths:
            raise utility.UserError(f'{folder / "HR"} holds no image files; put the HR images '
                                    f'of {name} there')
        self.lr_paths = [[_srdata.lr_file(folder / 'LR_bicubic' / f'X{s}', p, s)
                          for p in self.hr_paths] for s in self.scale]
        self.cache_id = f'{name}_{_srdata.short_hash(folder)}'
        self.finish_setup()
