"""torchvision's AlexNet and VGG16 ``features``, defined here layer for layer with the same
indices, so ``features.N.weight`` / ``features.N.bias`` of torchvision's ImageNet files
(alexnet-owt-7be5be79.pth, vgg16-397923af.pth) load into them.  torchvision is not needed.

A plan is a tuple of layers: ('conv', out_channels, kernel, stride, padding), ('relu',),
('maxpool', kernel, stride); the position in the plan is torchvision's index.
"""
import torch.nn as nn

from metric import _weights

ALEXNET = (
    ('conv', 64, 11, 4, 2), ('relu',), ('maxpool', 3, 2),
    ('conv', 192, 5, 1, 2), ('relu',), ('maxpool', 3, 2),
    ('conv', 384, 3, 1, 1), ('relu',),
    ('conv', 256, 3, 1, 1), ('relu',),
    ('conv', 256, 3, 1, 1), ('relu',), ('maxpool', 3, 2),
)


def _vgg_plan(widths):
    plan = []
    for item in widths:
        plan += [('maxpool', 2, 2)] if item == 'M' else [('conv', item, 3, 1, 1), ('relu',)]
    return tuple(plan)


# torchvision's VGG16 ("configuration D").
VGG16 = _vgg_plan((64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M',
                   512, 512, 512, 'M', 512, 512, 512, 'M'))

PLANS = {'alexnet': ALEXNET, 'vgg16': VGG16}


def conv_shapes(plan, upto=None):
    """{index: (out, in, k, k)} of the convs among the first ``upto`` layers of ``plan``."""
    shapes, in_ch = {}, 3
    for index, layer in enumerate(plan[:upto]):
        if layer[0] == 'conv':
            shapes[index] = (layer[1], in_ch, layer[2], layer[2])
            in_ch = layer[1]
    return shapes


def load_features(arch, upto, weights_dir, what):
    """The first ``upto`` layers of ``arch``'s features as a list of modules (index = torchvision's
    index), convs holding the ImageNet weights from the published file, frozen.

    UserError (one line) when the file is missing or has another layout.
    """
    plan = PLANS[arch]
    path = _weights.backbone_path(arch, weights_dir, what)
    expected = {}
    for index, shape in conv_shapes(plan).items():  # the whole features block must be there
        expected[f'features.{index}.weight'] = shape
        expected[f'features.{index}.bias'] = shape[:1]
    state = _weights.load_tensors(path, what, expected, ignore_prefixes=('classifier.',))
    layers = []
    for index, layer in enumerate(plan[:upto]):
        if layer[0] == 'conv':
            _, out_ch, k, stride, pad = layer
            conv = nn.utils.skip_init(nn.Conv2d, expected[f'features.{index}.weight'][1],
                                      out_ch, k, stride, pad)
            conv.weight = nn.Parameter(state[f'features.{index}.weight'], requires_grad=False)
            conv.bias = nn.Parameter(state[f'features.{index}.bias'], requires_grad=False)
            layers.append(conv)
        elif layer[0] == 'relu':
            layers.append(nn.ReLU())
        else:
            layers.append(nn.MaxPool2d(layer[1], layer[2]))
    for module in layers:
        module.requires_grad_(False)
    return layers, path


def min_side(layers):
    """Smallest input side for which every layer of ``layers`` gives an output of >= 1 pixel."""
    side = 1
    for module in reversed(layers):   # the input size that yields ``side`` at the output
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = (v[0] if isinstance(v, tuple) else v
                       for v in (module.kernel_size, module.stride, module.padding))
            side = max(1, (side - 1) * s + k - 2 * p)
    return side
