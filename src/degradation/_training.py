"""On-the-fly LR synthesis for training, batch-wise on the training device.

As Real-ESRGAN's ``feed_data``: the loader delivers HR patches, the preset degrades the
whole batch where the model trains, and an optional training-pair pool
(``--degradation_pool N``, Real-ESRGAN's ``queue_size``) mixes pairs across batches:
while the pool fills, the batch is stored and used as it is; once full, the pool is
shuffled, its first B pairs are used and the current batch takes their place.

Determinism: the degradation draws of batch b of epoch e come from keys (seed, e, stream
position of each sample) (see ``degradation.train_keys``) and the pool's shuffles from
(seed, e, b, rank).  The pool is emptied at the start of every epoch, so an epoch
depends on nothing before it and ``--load`` resumes exactly without storing the pool in
the checkpoint (Real-ESRGAN keeps its pool across the whole run; here the first
N / B batches of each epoch go through unmixed, as Real-ESRGAN's first N / B batches do).
"""
import torch

import degradation
import utility
from degradation._second_order import key_torch_generator


class OnTheFly:
    """``(lr, target) = synth(hr, epoch, batch)`` for hr [B, C, P, P] in [0, rgb_range].

    lr is [B, C, P/s, P/s] on the 8-bit grid of [0, rgb_range]; target the HR (pool-mixed)
    or, with ``usm_gt``, its USM-sharpened version.
    """

    def __init__(self, args, deg, rank=0, world_size=1):
        self.deg = deg
        self.name = args.degradation
        self.scale = args.scale[0]
        self.rgb_range = args.rgb_range
        self.seed = int(args.seed)
        self.rank, self.world_size = rank, world_size
        self.per_rank = args.batch_size // world_size
        self.pool_size = int(args.degradation_pool)
        self.usm_gt = bool(args.degradation_usm_gt)
        if self.usm_gt and not hasattr(deg, 'usm'):
            raise utility.UserError(f'--degradation_usm_gt sharpens the target as Real-ESRGAN '
                                    f'does, which --degradation {self.name} does not; drop it')
        if self.pool_size and self.pool_size % self.per_rank:
            nearest = self.per_rank * max(1, round(self.pool_size / self.per_rank))
            raise utility.UserError(
                f'--degradation_pool {self.pool_size} must be a multiple of the per-process '
                f'batch {self.per_rank}; use e.g. {nearest}')
        self.start_epoch(0)

    def start_epoch(self, epoch):
        self.epoch = int(epoch)
        self.pool_lr = self.pool_gt = None
        self.pool_fill = 0

    def keys(self, epoch, batch, b):
        """The degradation keys of the b samples of ``batch`` on this rank."""
        first = (batch * self.world_size + self.rank) * self.per_rank
        return degradation.train_keys(self.seed, epoch, batch, self.rank,
                                      range(first, first + b))

    @torch.no_grad()
    def __call__(self, hr, epoch, batch):
        if epoch != self.epoch:
            self.start_epoch(epoch)
        x = hr.float() / self.rgb_range
        lr, _ = self.deg(x, *self.keys(epoch, batch, hr.shape[0]))
        if self.pool_size:
            lr, x = self._pool(lr, x, epoch, batch)
        if self.usm_gt:
            x = self.deg.usm(x)
        return lr * self.rgb_range, x * self.rgb_range

    def _pool(self, lr, gt, epoch, batch):
        b = lr.shape[0]
        if self.pool_lr is None:
            self.pool_lr = lr.new_zeros((self.pool_size, *lr.shape[1:]))
            self.pool_gt = gt.new_zeros((self.pool_size, *gt.shape[1:]))
        if self.pool_lr.shape[1:] != lr.shape[1:]:
            raise ValueError('the training-pair pool holds patches of another size')
        if self.pool_fill < self.pool_size:
            self.pool_lr[self.pool_fill:self.pool_fill + b] = lr
            self.pool_gt[self.pool_fill:self.pool_fill + b] = gt
            self.pool_fill += b
            return lr, gt
        g = key_torch_generator((degradation._POOL, self.seed, epoch, batch, self.rank), 0, 'cpu')
        perm = torch.randperm(self.pool_size, generator=g).to(lr.device)
        self.pool_lr = self.pool_lr[perm]
        self.pool_gt = self.pool_gt[perm]
        out_lr, out_gt = self.pool_lr[:b].clone(), self.pool_gt[:b].clone()
        self.pool_lr[:b] = lr
        self.pool_gt[:b] = gt
        return out_lr, out_gt


def make(args, rank=0, world_size=1):
    """An ``OnTheFly`` for ``args``, or None when the dataset provides the LR (bicubic)."""
    deg = degradation.make(args.degradation, args.scale[0])
    return None if deg is None else OnTheFly(args, deg, rank, world_size)
