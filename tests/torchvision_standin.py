"""Test helpers for the perceptual metrics, written independently of src/metric/:

* torchvision's AlexNet and VGG16 ``features`` as torch.nn layer lists (torchvision's
  layers and indices, in-place ReLUs included), and random ImageNet-layout weight files
  made from them (He-scaled convs, small classifier stand-ins);
* a stand-in ``torchvision`` module whose ``models.alexnet`` / ``models.vgg16`` return those
  layers loaded from torch hub's checkpoint folder, so the official lpips and DISTS_pytorch
  code can run without torchvision, on the same weight files as ours.
"""
import types
from pathlib import Path

import torch
import torch.nn as nn

FILES = {'alexnet': 'alexnet-owt-7be5be79.pth', 'vgg16': 'vgg16-397923af.pth'}


def alexnet_features():
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2))


def vgg16_features():
    layers, in_ch = [], 3
    for v in (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M',
              512, 512, 512, 'M'):
        if v == 'M':
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_ch = v
    return nn.Sequential(*layers)


FEATURES = {'alexnet': alexnet_features, 'vgg16': vgg16_features}


def random_state(arch, seed=0):
    """{'features.N.weight'/'bias', 'classifier.*'}: random weights in torchvision's layout."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in FEATURES[arch]().state_dict().items():
        if key.endswith('weight'):
            fan_in = value[0].numel()
            value = torch.randn(value.shape, generator=g) * (2.0 / fan_in) ** 0.5
        else:
            value = torch.randn(value.shape, generator=g) * 0.01
        state['features.' + key] = value
    state['classifier.1.weight'] = torch.randn(4, 8, generator=g)   # ignored by the metrics
    state['classifier.1.bias'] = torch.zeros(4)
    return state


def write_hub(torch_home, seed=0, archs=('alexnet', 'vgg16')):
    """Random backbone files under <torch_home>/hub/checkpoints/; returns that folder."""
    folder = Path(torch_home) / 'hub' / 'checkpoints'
    folder.mkdir(parents=True, exist_ok=True)
    for arch in archs:
        torch.save(random_state(arch, seed), folder / FILES[arch])
    return folder


def loaded_features(arch, checkpoints):
    """torchvision's ``<arch>().features`` holding the weights of checkpoints/<published name>."""
    with torch.device('meta'):      # no random initialisation of weights about to be replaced
        features = FEATURES[arch]()
    state = torch.load(Path(checkpoints) / FILES[arch], map_location='cpu', weights_only=True)
    features.load_state_dict({k[len('features.'):]: v for k, v in state.items()
                              if k.startswith('features.')}, assign=True)
    return features


def fake_torchvision(checkpoints):
    """A ``torchvision`` module with ``models.alexnet`` / ``models.vgg16`` (any arguments)."""
    tv = types.ModuleType('torchvision')
    models = types.ModuleType('torchvision.models')

    def constructor(arch):
        def make(*args, **kwargs):
            net = nn.Module()
            net.features = loaded_features(arch, checkpoints)
            return net
        return make

    models.alexnet = constructor('alexnet')
    models.vgg16 = constructor('vgg16')
    tv.models = models
    tv.transforms = types.ModuleType('torchvision.transforms')   # imported, not used
    return tv
