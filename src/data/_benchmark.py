"""Any benchmark folder ``<dir_data>/benchmark/<Name>/HR/*.png`` as a test (or training) set.

No list of names: Set5, Set14, B100, Urban100, Manga109 or a folder of one's own are
found the same way.  LR images are read from ``<Name>/LR_bicubic/X<s>/<stem>x<s>.png``
when present (EDSR-PyTorch's layout); otherwise they are made from the HR with
MATLAB-compatible bicubic downscaling and cached (see ``_srdata``).  With ``--degradation
NAME`` (not bicubic) a test set reads ``<Name>/LR_<name>/X<s>/`` as written by
``src/degrade.py``; a missing folder is a user error naming the command that makes it.
``benchmark`` is True: metrics use Y and shave ``scale`` pixels.
"""
import lr_set
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
        deg = getattr(args, 'degradation', 'bicubic')
        self.folder, self.degradation = folder, deg
        self.lr_paths = [[_srdata.lr_file(folder / f'LR_{deg}' / f'X{s}', p, s)
                          for p in self.hr_paths] for s in self.scale]
        if deg != 'bicubic' and not train:
            # Degraded LR images are never made here: they come from degrade.py, seeded.
            for s, paths in zip(self.scale, self.lr_paths):
                lr_dir = folder / f'LR_{deg}' / f'X{s}'
                missing = [p.name for p, lr in zip(self.hr_paths, paths) if lr is None]
                if missing:
                    what = (f'{lr_dir} does not exist' if not lr_dir.is_dir() else
                            f'{lr_dir} lacks the LR of {missing[0]}')
                    raise utility.UserError(
                        f'{what}; make it with: python src/degrade.py --dir_data '
                        f'{folder.parent.parent} --data_test {name} --scale {s} '
                        f'--degradation {deg} --seed 0')
        self.cache_id = f'{name}_{_srdata.short_hash(folder)}'
        self.finish_setup()

    def lr_set(self, idx_scale):
        """The LR set read at scale index ``idx_scale``: bicubic, or the manifest of the
        degraded folder (see ``lr_set.identity``)."""
        return lr_set.identity(self.folder, self.degradation, self.scale[idx_scale])
