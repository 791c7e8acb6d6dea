"""Any benchmark folder ``<dir_data>/benchmark/<Name>/HR/*.png`` as a test (or training) set.

No list of names: Set5, Set14, B100, Urban100, Manga109 or a folder of one's own are
found the same way.  LR images are read from ``<Name>/LR_bicubic/X<s>/<stem>x<s>.png``
when present (EDSR-PyTorch's layout); otherwise they are made from the HR with
MATLAB-compatible bicubic downscaling and cached (see ``_srdata``).  With ``--degradation
NAME`` (not bicubic) a test set reads ``<Name>/LR_<name>/X<s>/`` as written by
``src/degrade.py``; a missing folder is a user error naming the command that makes it.
A set whose manifest lists LR versions (``--degradation mix --variants K``) has one item per
version ``<stem>+<k>``, scored against ``<stem>``; ``version_groups`` maps each item to its
group (the degradation that made it) for the per-group means of ``evaluate``.
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
        import degradation
        deg = (degradation.for_tests(args) if not train
               else getattr(args, 'degradation', 'bicubic'))
        self.folder, self.degradation = folder, deg
        # Multi-version sets (degrade.py --degradation mix --variants K): one item per LR
        # version '<stem>+<k>', each scored against its HR '<stem>'.
        self.version_groups = None
        if deg != 'bicubic' and not train and len(self.scale) == 1:
            self._versions(folder, name, deg)
        if self.version_groups is not None:
            self.cache_id = f'{name}_{_srdata.short_hash(folder)}'
            self.finish_setup()
            return
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

    def _versions(self, folder, name, deg):
        """Expand to one item per LR version when the set's manifest lists versions."""
        s = self.scale[0]
        lr_dir = folder / f'LR_{deg}' / f'X{s}'
        manifest = lr_dir / lr_set.MANIFEST
        images = lr_set.read_manifest(lr_dir)
        if images is None or 'variants' not in images:
            return
        by_stem = {p.stem: p for p in self.hr_paths}
        hr_paths, lr_paths, names, groups = [], [], [], {}
        for lr_name in sorted(images['images']):
            entry = images['images'][lr_name]
            hr = by_stem.get(entry.get('hr'))
            lr = lr_dir / entry['file']
            if hr is None or not lr.is_file():
                what = (f'its HR image {entry.get("hr")!r} is not in {folder / "HR"}'
                        if hr is None else f'{lr} is missing')
                raise utility.UserError(
                    f'{manifest} lists {lr_name}, but {what}; make the set again with: python '
                    f'src/degrade.py --dir_data {folder.parent.parent} --data_test {name} '
                    f'--scale {s} --degradation {deg} --variants {images["variants"]} --seed '
                    f'{images.get("seed", 0)}')
            hr_paths.append(hr)
            lr_paths.append(lr)
            names.append(lr_name)
            groups[lr_name] = entry.get('group', deg)
        self.hr_paths, self.lr_paths, self.image_names = hr_paths, [lr_paths], names
        self.version_groups = groups
