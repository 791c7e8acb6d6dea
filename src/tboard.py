"""TensorBoard logging (``--tensorboard``): an optional dependency, imported only here.

Scalars per epoch (the step is the epoch): every loss term and the total (``loss/<TYPE>``),
the learning rate (``lr``), every metric of every test set and scale (``<set>_x<s>/<metric>``);
and per evaluation an image ``first_test/LR_SR_HR``: the first test image's LR (enlarged
with nearest neighbours), SR and HR side by side.  Files go to ``experiment/<save>/tb/``.
A resumed run appends with ``purge_step`` = the first epoch it writes, so steps that an
interrupted run wrote after its last checkpoint are dropped by TensorBoard's readers.
"""
import utility

INSTALL = 'pip install tensorboard'


def require():
    """Import check: a UserError naming the install command when TensorBoard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as e:
        raise utility.UserError(f'--tensorboard needs the tensorboard package ({e}); '
                                f'{INSTALL}, or drop --tensorboard') from None


class Board:
    """A SummaryWriter on ``directory``; ``purge_step``: see the module docstring."""

    def __init__(self, directory, purge_step=None):
        require()
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(directory), purge_step=purge_step)

    def scalars(self, values, step):
        """``values``: {tag: float}; NaN values (e.g. an all-skipped epoch) are written too."""
        for tag, value in values.items():
            self.writer.add_scalar(tag, float(value), step)

    def grid(self, tag, lr, sr, hr, rgb_range, step):
        """LR [C, h, w], SR and HR [C, H, W] in [0, rgb_range] side by side, as one image."""
        import torch
        import torch.nn.functional as F

        import imageops
        h, w = sr.shape[-2:]
        up = F.interpolate(lr[None].float(), size=(h, w), mode='nearest')[0]
        panels = [up, sr.float()] + ([hr.float()] if hr is not None and hr.numel() else [])
        panels = [p[:, :h, :w] for p in panels]
        gap = torch.full((sr.shape[0], h, 4), float(rgb_range))
        row = [panels[0].cpu()]
        for p in panels[1:]:
            row += [gap, p.cpu()]
        image = imageops.to_uint8(torch.cat(row, dim=2), rgb_range)
        self.writer.add_image(tag, image, step, dataformats='CHW')

    def flush(self):
        self.writer.flush()

    def evaluation(self, loss_means, lr, summary, lr_img, sr, hr, rgb_range, step):
        """After an evaluation: the last epoch's loss means ({term: value}) and ``lr`` (None
        in a test-only run), every metric of ``summary``, and the first test image's LR, SR
        and HR grid (``grid``); flushed."""
        values = {f'loss/{key}': value for key, value in loss_means.items()}
        if lr is not None:
            values['lr'] = lr
        values.update(metric_scalars(summary))
        self.scalars(values, step)
        self.grid('first_test/LR_SR_HR', lr_img, sr, hr, rgb_range, step)
        self.flush()

    def close(self):
        self.writer.close()


def metric_scalars(summary):
    """{dataset: {'x2': {metric: value}}} -> {'<dataset>_x2/<metric>': value}."""
    return {f'{name}_{scale}/{metric}': value
            for name, per_scale in summary.items()
            for scale, means in per_scale.items()
            for metric, value in means.items()}


def open_board(exp, epoch):
    """The run's Board in ``experiment/<save>/tb/``; ``epoch``: the last epoch done.  A
    resumed run drops what an interrupted one wrote after its checkpoint."""
    return Board(exp.path('tb'), purge_step=epoch + 1 if exp.resume else None)
