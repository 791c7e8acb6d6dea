"""Random VGG19 weights in torchvision's vgg19 state_dict layout, for the VGG loss tests.

The classifier tensors are small stand-ins: the loader ignores ``classifier.*``.
"""
import torch

from loss import _vgg


def random_vgg19_state(seed=0):
    """Random weights with torchvision's vgg19 keys and conv shapes (He-scaled, so the
    features neither vanish nor explode through 16 layers)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for index, shape in _vgg.CONV_SHAPES.items():
        fan_in = shape[1] * 9
        state[f'features.{index}.weight'] = torch.randn(shape, generator=g) * (2 / fan_in) ** 0.5
        state[f'features.{index}.bias'] = torch.randn(shape[0], generator=g) * 0.01
    for i, (o, n) in {0: (8, 16), 3: (8, 8), 6: (4, 8)}.items():
        state[f'classifier.{i}.weight'] = torch.randn(o, n, generator=g)
        state[f'classifier.{i}.bias'] = torch.zeros(o)
    return state
