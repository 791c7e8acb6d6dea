"""Exponential moving average of a network's weights (``--ema_decay``)."""
import copy

import torch


class EMA:
    """Keeps ``shadow = decay * shadow + (1 - decay) * weights`` after each optimiser step.

    Buffers (e.g. batch-norm statistics) are copied, not averaged.  ``state_dict()`` is a plain
    state_dict of the averaged network, loadable into the bare model.
    """

    def __init__(self, net, decay):
        if not 0.0 < decay < 1.0:
            raise ValueError(f'EMA decay must lie in (0, 1), got {decay}')
        self.decay = decay
        self.shadow = copy.deepcopy(net).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, net):
        for s, p in zip(self.shadow.parameters(), net.parameters()):
            s.lerp_(p.detach(), 1.0 - self.decay)
        for s, b in zip(self.shadow.buffers(), net.buffers()):
            s.copy_(b)

    def state_dict(self):
        return self.shadow.state_dict()

    def load_state_dict(self, state):
        self.shadow.load_state_dict(state)
