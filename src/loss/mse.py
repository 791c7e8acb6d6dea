"""MSE: mean squared error between sr and hr."""
import torch.nn as nn


def make_loss(args):
    """nn.MSELoss(): scalar mean of (sr - hr)^2 over all elements, in squared pixel units."""
    return nn.MSELoss()
