"""Data: training and test loaders built from dataset names (EDSR-PyTorch conventions).

Finding a dataset named X (``--data_train``/``--data_test``):
  1. the file ``src/data/<x lower-case>.py`` defining ``make_dataset(args, name, train, rank)``
     (DIV2K, Sample, Demo); files whose name starts with '_' are helpers;
  2. otherwise the folder ``<dir_data>/benchmark/X/HR`` (any benchmark, no list of names).
An unknown name raises UserError listing both.

``Data(args, rank=0, world_size=1)``:

* ``loader_train`` (None with ``--test_only``): ``test_every`` batches per epoch.  Every
  batch is a 4-tuple ``(lr, hr, names, idx_scale)``, also with a single scale: lr float32
  [B, C, q, q], hr [B, C, s*q, s*q], both in [0, rgb_range] with 8-bit values, B =
  ``batch_size // world_size``; names a list of B image names; idx_scale a plain int, the
  index into ``args.scale`` of the batch's scale (always 0 with one scale; with several
  (MDSR) drawn per batch, see ``scale_indices``).  Patch sizes as EDSR-PyTorch: one scale:
  HR ``patch_size`` (q = patch_size // s); several scales: LR q = ``patch_size``.
* ``set_epoch(epoch)`` before iterating an epoch: shuffling, scales, crops and
  augmentation are a pure function of (seed, epoch, position), whatever ``n_threads``
  is; under DDP each rank gets disjoint samples (see ``_loader``).
* ``loader_test``: one DataLoader (batch 1) per ``--data_test`` name, yielding
  ``(lr, hr, names)``: lr [1, C, h, w], hr [1, C, s*h, s*w] (HR cropped to a multiple of
  the scale), names a tuple of one image name.  With ``--degradation`` other than bicubic
  the training batches carry an empty lr (shape [B, 0]) and HR patches of
  ``patch_size // s * s``: the trainer synthesises the LR (see ``degradation``).
  ``loader.dataset`` has ``.name``, ``.benchmark`` and ``.set_scale(idx)`` (call it
  before iterating each scale).  Demo yields an empty hr (shape [1, 0]).  Every rank gets
  the whole test set.

Image conversion (grayscale, RGBA, 16 bit) is described in ``_image``; LR generation and
caches in ``_srdata``.
"""
import os
import re
from pathlib import Path

import torch

import registry
import utility
from data import _loader

_HERE = Path(__file__).resolve().parent


def dataset_files():
    """{module name: display name} of the dataset files in src/data/ (nothing imported)."""
    found = {}
    for stem in registry.names('data', 'make_dataset'):
        text = (_HERE / f'{stem}.py').read_text(encoding='utf-8', errors='replace')
        declared = re.search(r"^NAME\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
        found[stem] = declared.group(1) if declared else stem
    return found


def benchmark_folders(dir_data):
    root = Path(dir_data) / 'benchmark'
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / 'HR').is_dir())


def make_dataset(args, name, train, rank=0):
    """The dataset called ``name`` (see the module docstring)."""
    if not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9_.-]*', name):
        raise utility.UserError(f'dataset name {name!r} must be a plain name such as Set5 or '
                                'DIV2K, not a path; put the folder under <dir_data>/benchmark/')
    files = dataset_files()
    if name.lower() in files:
        module = registry.load('data', name, 'make_dataset', 'dataset')
        import degradation
        deg = degradation.for_tests(args)
        if not train and deg != 'bicubic' and not getattr(module, 'LR_INPUT', False):
            raise utility.UserError(
                f'--degradation {deg}: test set {name} has no degraded LR images; test on a '
                f'benchmark folder degraded by src/degrade.py (e.g. python src/degrade.py '
                f'--data_test Set5 --scale {args.scale[0]} --degradation {deg} --seed 0)')
        return module.make_dataset(args, name, train, rank)
    dir_data = Path(args.dir_data).resolve()
    folder = dir_data / 'benchmark' / name
    if (folder / 'HR').is_dir():
        from data._benchmark import BenchmarkData
        return BenchmarkData(args, name, folder, train, rank)
    if not dir_data.is_dir():
        raise utility.UserError(f'--dir_data {dir_data} does not exist; point it at the folder '
                                f'that holds benchmark/{name}/HR')
    found = benchmark_folders(dir_data)
    raise utility.UserError(
        f'unknown dataset {name!r}: no file src/data/{name.lower()}.py and no folder {folder}/HR; '
        f'dataset files: {", ".join(files.values()) or "none"}; benchmark folders in '
        f'{dir_data / "benchmark"}: {", ".join(found) or "none"}')


def refuse_training_on_test_sets(args):
    """UserError when a training run would also be tested on one of its training sets.

    The "best" model would then be picked on the images it was trained on.  DIV2K is left
    to its own check: ``--data_range`` splits it into disjoint train and test images.
    """
    if args.test_only:
        return
    train = {name.lower() for name in args.data_train}
    for name in args.data_test:
        if name.lower() in train and name.lower() != 'div2k':
            raise utility.UserError(
                f'--data_train and --data_test both name {name}: the best model would be chosen '
                f'on its own training images; split the images into two folders, e.g. '
                f'<dir_data>/benchmark/{name}_train/HR and {name}_test/HR, and give '
                f'--data_train {name}_train --data_test {name}_test')


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        return os.cpu_count() or 1


def worker_count(n_threads, on_gpu, cpus=None):
    """Data-loading worker processes for ``--n_threads`` on a machine with ``cpus`` cores.

    With a GPU the workers have the CPU to themselves: at most one per core.  When the model
    itself runs on the CPU, every core is already busy with torch's intra-op threads (and the
    SSL op's), and each worker would take time slices from them: a 2-core machine ran the
    demo's epochs several times slower with 2 workers under load.  So on the CPU a worker is
    only started for every 8 cores (none below 8); loading a batch of patches in the main
    process costs milliseconds beside a CPU training step.
    """
    cpus = _usable_cpus() if cpus is None else cpus
    if on_gpu:
        return min(n_threads, cpus)
    return min(n_threads, cpus // 8)


class Data:
    """Training and test loaders for ``args`` on one rank of ``world_size``.

    ``--n_threads`` workers (the batches do not depend on the number of workers, only the
    speed does), limited by ``worker_count``.
    """

    def __init__(self, args, rank=0, world_size=1):
        self.args = args
        self.loader_train = None
        self.batch_sampler = None
        pin = (not args.cpu) and torch.cuda.is_available()
        workers = worker_count(args.n_threads, on_gpu=pin)
        if not args.test_only:
            per_rank = args.batch_size // world_size
            if per_rank < 1:
                raise utility.UserError(f'--batch_size {args.batch_size} is smaller than the '
                                        f'number of processes ({world_size}); raise it')
            if len(args.scale) == 1 and args.patch_size < args.scale[0]:
                raise utility.UserError(f'--patch_size {args.patch_size} is smaller than the '
                                        f'scale {args.scale[0]}; use at least {args.scale[0]}')
            train_sets = [make_dataset(args, name, True, rank) for name in args.data_train]
            for dataset in train_sets:
                # Here, not when an image is first drawn (maybe hours into training).
                dataset.check_patch_fits()
            pool = _loader.TrainPool(train_sets)
            self.batch_sampler = _loader.EpochBatchSampler(
                len(pool), per_rank, args.test_every, args.seed, len(args.scale),
                rank, world_size)
            self.loader_train = _loader.Loader(
                pool, batch_sampler=self.batch_sampler, collate_fn=_loader.collate_train,
                num_workers=workers, pin_memory=pin, persistent_workers=workers > 0)
        self.loader_test = []
        for name in args.data_test:
            dataset = make_dataset(args, name, False, rank)
            self.loader_test.append(_loader.Loader(
                dataset, batch_size=1, shuffle=False, pin_memory=pin,
                collate_fn=_loader.collate_test,
                num_workers=min(workers, len(dataset))))

    def set_epoch(self, epoch):
        """Make the next training epoch the one numbered ``epoch`` (any int >= 0)."""
        if self.batch_sampler is not None:
            self.batch_sampler.set_epoch(epoch)

    def scale_indices(self, epoch):
        """int array [test_every]: idx_scale of every training batch of ``epoch``."""
        return self.batch_sampler.scale_indices(epoch)
