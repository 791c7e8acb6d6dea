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


# ---------------------------------------------------------------- Inception v3 (for pytorch-fid)
# torchvision.models.inception's classes as pytorch-fid's inception.py uses them (it subclasses
# InceptionA/C/E and keeps InceptionB/D, BasicConv2d and Inception3's attributes), written from
# torchvision's definitions: same attribute names, so the state_dict keys are torchvision's.
class BasicConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class InceptionA(nn.Module):
    def __init__(self, in_channels, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)


class InceptionB(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), dbl,
                          nn.functional.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels, channels_7x7):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)


class InceptionD(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([a, b, nn.functional.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)


class Inception3(nn.Module):
    def __init__(self, num_classes=1000, aux_logits=True, **unused):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        if aux_logits:
            raise NotImplementedError('the stand-in has no auxiliary classifier')
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.5)
        self.fc = nn.Linear(2048, num_classes)


FID_FILE = 'pt_inception-2015-12-05-6726825d.pth'


def random_fid_inception_state(seed=0):
    """Random weights in the layout of pytorch-fid's pt_inception file (torchvision's
    Inception3, 1008 classes, no aux classifier, no num_batches_tracked): He-scaled convs,
    BN affine near (1, 0), running means near 0 and variances near 1, so that features
    neither vanish nor explode through 94 layers."""
    g = torch.Generator().manual_seed(seed)
    with torch.device('meta'):
        net = Inception3(num_classes=1008, aux_logits=False)
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith('num_batches_tracked'):
            continue
        shape = value.shape
        if key.endswith('conv.weight'):
            v = torch.randn(shape, generator=g) * (2.0 / shape[1:].numel()) ** 0.5
        elif key.endswith('running_var'):
            v = 1 + 0.1 * torch.rand(shape, generator=g)
        elif key.endswith('bn.weight'):
            v = 1 + 0.1 * torch.randn(shape, generator=g)
        elif key == 'fc.weight':
            v = torch.randn(shape, generator=g) * 0.01
        else:                    # BN biases, running means, fc bias
            v = 0.1 * torch.randn(shape, generator=g)
        state[key] = v
    return state


def write_fid_inception(folder, seed=0):
    """Random pt_inception-2015-12-05-6726825d.pth in ``folder``; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(random_fid_inception_state(seed), folder / FID_FILE)
    return folder / FID_FILE


def fake_torchvision_inception():
    """A ``torchvision`` module for pytorch-fid's inception.py: ``models.inception`` with the
    classes above and ``models.inception_v3`` (no pretrained weights)."""
    tv = types.ModuleType('torchvision')
    tv.__version__ = '0.20.0'
    models = types.ModuleType('torchvision.models')
    inception = types.ModuleType('torchvision.models.inception')
    for cls in (BasicConv2d, InceptionA, InceptionB, InceptionC, InceptionD, InceptionE,
                Inception3):
        setattr(inception, cls.__name__, cls)
    models.inception = inception

    def inception_v3(weights=None, **kwargs):
        if weights is not None:
            raise RuntimeError('the stand-in has no pretrained weights')
        return Inception3(**kwargs)
    models.inception_v3 = inception_v3
    tv.models = models
    return tv
