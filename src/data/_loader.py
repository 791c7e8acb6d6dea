"""Deterministic training batches: the epoch sampler, the pooled dataset and the collate.

Every random choice of an epoch is a pure function of (seed, epoch, position):

* the image stream: concatenated permutations of all training images drawn from
  (seed, epoch), long enough for ``test_every`` global batches;
* global batch b takes positions ``b*G .. b*G+G-1`` (G = per-rank batch x world size);
  rank r takes the r-th slice of it, so ranks never share a sample;
* the scale of batch b (multi-scale training, as MDSR): drawn from (seed, epoch), the
  same on every rank, one scale per batch;
* crop and augmentation of the sample at position k: a generator seeded (seed, epoch, k).

Nothing depends on the number of workers or on what ran before, so resuming at an epoch
reproduces it exactly.
"""
import functools

import numpy as np
import torch
from torch.utils.data import default_collate

import utility

_STREAM, _SCALES, _SAMPLE = 0, 1, 2      # separate random streams of one epoch


def _seed32(seed):
    return int(seed) % (2 ** 32)


class WorkerFailure:
    """A UserError raised in a DataLoader worker, carried to the main process as a batch.

    DataLoader re-raises worker exceptions with the worker's traceback in the message;
    carrying the message instead lets the main process raise the original one-line error.
    """

    def __init__(self, message):
        self.message = message


def report_to_main(getter):
    """Decorate a dataset's item getter: in a worker, a UserError becomes a WorkerFailure."""
    @functools.wraps(getter)
    def wrapper(*args, **kwargs):
        try:
            return getter(*args, **kwargs)
        except utility.UserError as e:
            if torch.utils.data.get_worker_info() is None:
                raise
            return WorkerFailure(str(e))
    return wrapper


class SkippedItem:
    """An item a dataset could not read and chose to skip (Demo): the loader drops it.

    ``message`` says which file and why; the loader keeps it in ``skipped``.
    """

    def __init__(self, message):
        self.message = message


class Loader(torch.utils.data.DataLoader):
    """A DataLoader that raises a worker's UserError in the main process, as one line.

    Items a dataset skipped (``SkippedItem``) are not yielded; their messages collect in
    ``skipped`` (each once), for the run to report at its end.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped = []

    def __iter__(self):
        for batch in super().__iter__():
            if isinstance(batch, WorkerFailure):
                raise utility.UserError(batch.message)
            if isinstance(batch, SkippedItem):
                if batch.message not in self.skipped:
                    self.skipped.append(batch.message)
                continue
            yield batch


def _failure(samples):
    return next((s for s in samples if isinstance(s, (WorkerFailure, SkippedItem))), None)


def collate_test(samples):
    """default_collate, passing a WorkerFailure or SkippedItem through."""
    return _failure(samples) or default_collate(samples)


def collate_train(samples):
    """[(lr, hr, name, idx_scale), ...] -> (lr [B, ...], hr [B, ...], names list, idx_scale int).

    All samples of a batch share one scale (the sampler draws it per batch).
    """
    failure = _failure(samples)
    if failure is not None:
        return failure
    lr, hr, names, scales = zip(*samples)
    return torch.stack(lr), torch.stack(hr), list(names), int(scales[0])


class TrainPool(torch.utils.data.Dataset):
    """All training datasets as one; indexed by (image, seed, idx_scale) from the sampler."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])

    def __len__(self):
        return int(self.offsets[-1])

    def __getitem__(self, index):
        k, seed, idx_scale = index
        d = int(np.searchsorted(self.offsets, k, side='right')) - 1
        return self.datasets[d].train_item(k - int(self.offsets[d]), seed, idx_scale)


class EpochBatchSampler(torch.utils.data.Sampler):
    """Yields ``batches`` lists of ``per_rank`` indices ``(image, seed, idx_scale)`` per epoch."""

    def __init__(self, n_images, per_rank, batches, seed, n_scales, rank=0, world_size=1):
        self.n_images = n_images
        self.per_rank = per_rank
        self.batches = batches
        self.seed = _seed32(seed)
        self.n_scales = n_scales
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return self.batches

    def scale_indices(self, epoch=None):
        """int array [batches]: the scale index of each batch of ``epoch`` (default: current)."""
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, epoch, _SCALES])
        return rng.integers(0, self.n_scales, self.batches)

    def __iter__(self):
        epoch = self.epoch
        global_batch = self.per_rank * self.world_size
        total = self.batches * global_batch
        rng = np.random.default_rng([self.seed, epoch, _STREAM])
        reps = -(-total // self.n_images)
        stream = np.concatenate([rng.permutation(self.n_images) for _ in range(reps)])
        scales = self.scale_indices(epoch)
        for b in range(self.batches):
            start = b * global_batch + self.rank * self.per_rank
            yield [(int(stream[k]), (self.seed, epoch, _SAMPLE, k), int(scales[b]))
                   for k in range(start, start + self.per_rank)]
