"""Which evaluation made the best model: one test set, scale and metric, stated in the log."""
import math


class Best:
    """The best score so far of ``metric`` on ``dataset`` at ``scale`` (``--best_on``).

    ``state`` is None before the first evaluation, then ``{metric: value, ..., 'epoch': n}``
    (all the values of the best evaluation; plain Python, stored in the checkpoint).
    """

    def __init__(self, dataset, scale, metric='psnr', higher_is_better=True, fmt='.2f'):
        self.dataset, self.scale, self.metric = dataset, scale, metric
        self.higher_is_better = higher_is_better
        self.fmt = fmt      # how the log prints the value
        self.state = None

    def describe(self):
        order = 'highest' if self.higher_is_better else 'lowest'
        return f'{self.dataset} x{self.scale} ({order} {self.metric.upper()}, set with --best_on)'

    def concerns(self, dataset, scale):
        return (dataset, scale) == (self.dataset, self.scale)

    def restore(self, state):
        """The state saved in a checkpoint; dropped (None) when it lacks this metric, i.e. the
        run was started with other --metrics or --best_on.  True when kept."""
        self.state = state if state and self.metric in state else None
        return self.state is not None or not state

    def update(self, epoch, means):
        """Record the evaluation ``means`` ({metric: value}) of ``epoch``; True when it is the
        new best."""
        value = means[self.metric]
        if not math.isfinite(value):    # a diverged model's NaN never becomes "best"
            return False
        if self.state is not None:
            old = self.state[self.metric]
            if (value <= old) if self.higher_is_better else (value >= old):
                return False
        self.state = {**means, 'epoch': epoch}
        return True

    def note(self):
        """' (Best: 33.12 @epoch 7)' for the log line of the best_on set."""
        if self.state is None:
            return ''
        return f'  (Best: {self.state[self.metric]:{self.fmt}} @epoch {self.state["epoch"]})'
