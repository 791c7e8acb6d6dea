"""VGG19 features for the perceptual losses VGG22 and VGG54 (helper, not a loss type).

The network is defined here, layer for layer as torchvision's ``vgg19().features`` (16 3x3
convs with ReLU, five 2x2 max pools, same indices), so the ``features.N.weight`` /
``features.N.bias`` tensors of a torchvision vgg19 state_dict (e.g. vgg19-dcbb9e9d.pth) load
into it; ``classifier.*`` tensors in that file are ignored.  Nothing is downloaded.

The VGG weights are frozen and kept as non-persistent buffers: they move with ``.to()`` but
stay out of the loss state_dict, so run checkpoints do not carry 80 MB of fixed weights; a
resumed run reads them again from ``--vgg_weights`` (the path is in the saved args), or
without that flag from torch hub's checkpoints folder, where torchvision keeps
vgg19-dcbb9e9d.pth.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import utility

# torchvision's VGG19 ("configuration E"): conv widths, 'M' = 2x2 max pool, stride 2.
_PLAN = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M',
         512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M')

# Number of leading ``features`` layers kept: up to and including conv2_2 (index 7) or
# conv5_4 (index 34), i.e. the features *before* that conv's ReLU, as in ESRGAN.
DEPTH = {'22': 8, '54': 35}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_NEEDED = ('a torchvision vgg19 state_dict (e.g. vgg19-dcbb9e9d.pth) given with '
           '--vgg_weights PATH or found in torch hub\'s checkpoints folder')


def _conv_shapes():
    """{features index: (out, in, 3, 3)} for the 16 convs of torchvision's vgg19."""
    shapes, index, in_ch = {}, 0, 3
    for item in _PLAN:
        if item == 'M':
            index += 1
        else:
            shapes[index] = (item, in_ch, 3, 3)
            in_ch = item
            index += 2  # conv, ReLU
    return shapes


CONV_SHAPES = _conv_shapes()


def _refuse(source, problem):
    raise utility.UserError(f'{source} {problem}; VGG22/VGG54/PERCEPTUAL need {_NEEDED}')


def load_vgg19_state(path):
    """Read and check a torchvision vgg19 state_dict file.

    ``path`` '' (no --vgg_weights): torchvision's own file, vgg19-dcbb9e9d.pth, in torch hub's
    checkpoints folder ($TORCH_HOME/hub/checkpoints), the rule the metric backbones follow.
    Returns {'features.N.weight' | 'features.N.bias': float32 tensor} for the 16 convs.
    Raises utility.UserError (one line) when the file is missing or unreadable, or its
    tensors are not those of torchvision's vgg19.
    """
    if path:
        path = os.path.expanduser(path)
        source = f'--vgg_weights {path!r}'
    else:
        from metric import _weights
        path = str(_weights.backbone_path('vgg19', '', 'VGG22/VGG54/PERCEPTUAL',
                                          flag='give its path with --vgg_weights'))
        source = path
    # mmap: the 0.5 GB classifier in the file is never read.
    try:
        state = utility.load_pt(path, source, mmap=True,
                                missing=f'VGG22/VGG54/PERCEPTUAL need {_NEEDED}')
    except utility.UserError as e:
        if 'no such file' in str(e):
            raise
        raise utility.UserError(f'{e}; VGG22/VGG54/PERCEPTUAL need {_NEEDED}') from None
    expected = {}
    for index, shape in CONV_SHAPES.items():
        expected[f'features.{index}.weight'] = shape
        expected[f'features.{index}.bias'] = shape[:1]
    problem = utility.layout_problem(state, expected, ignore_prefixes=('classifier.',))
    if problem:
        _refuse(source, problem.replace('the expected layout', 'the vgg19 layout'))
    out = {}
    for key in expected:
        value = state[key]
        out[key] = value.detach().to(torch.float32).contiguous().clone()
    return out


class _FrozenConv3x3(nn.Module):
    """3x3 conv, padding 1, whose weights are fixed non-persistent buffers."""

    def __init__(self, weight, bias):
        super().__init__()
        self.register_buffer('weight', weight, persistent=False)
        self.register_buffer('bias', bias, persistent=False)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, padding=1)


class VGG19Features(nn.Module):
    """The first ``DEPTH[conv]`` layers of VGG19 ``features``, with ImageNet input normalisation.

    forward: [B, 3, H, W] in [0, rgb_range] -> [B, 128, H/2, W/2] (conv '22') or
    [B, 512, H/16, W/16] (conv '54'), pre-activation features.  Always in eval mode.
    """

    def __init__(self, conv, state, rgb_range=255):
        super().__init__()
        if conv not in DEPTH:
            raise ValueError(f'conv must be one of {sorted(DEPTH)}, got {conv!r}')
        layers = []
        for item in _PLAN:
            if item == 'M':
                layers.append(nn.MaxPool2d(2, 2))
            else:
                index = len(layers)  # torchvision's features index of this conv
                layers.append(_FrozenConv3x3(state[f'features.{index}.weight'],
                                             state[f'features.{index}.bias']))
                layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers[:DEPTH[conv]])
        self.rgb_range = rgb_range
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)
        self.train(False)

    def train(self, mode=True):
        # Frozen feature extractor: never switches to training mode.
        return super().train(False)

    def forward(self, x):
        if x.shape[1] != 3:
            raise ValueError(f'VGG features need 3-channel RGB input, got {x.shape[1]} channels')
        x = (x / self.rgb_range - self.mean) / self.std
        return self.features(x)


def min_size(conv):
    """Smallest image side for features ``conv``: each max pool before it halves the size."""
    layers = [kind for item in _PLAN for kind in (('pool',) if item == 'M' else ('conv', 'relu'))]
    return 2 ** layers[:DEPTH[conv]].count('pool')


def make_vgg_loss(args, conv):
    """The VGG22 / VGG54 term for parsed ``args`` (--vgg_criterion: MSE as EDSR-PyTorch, or L1)."""
    if args.n_colors != 3:
        raise utility.UserError(f'VGG{conv} works on RGB images, but --n_colors is '
                                f'{args.n_colors}; use --n_colors 3 or drop VGG{conv} from --loss')
    if args.patch_size < min_size(conv):
        raise utility.UserError(f'VGG{conv} needs --patch_size >= {min_size(conv)} (VGG19 '
                                f'halves the size before conv{conv[0]}_{conv[1]}), got '
                                f'{args.patch_size}')
    return VGGLoss(conv=conv, weights=args.vgg_weights, rgb_range=args.rgb_range,
                   criterion=args.vgg_criterion)


class VGGLoss(nn.Module):
    """Perceptual loss: distance between VGG19 features of sr and hr.

    forward(sr, hr): [B, 3, H, W] in [0, rgb_range] each -> scalar.  ``criterion`` 'mse'
    (EDSR-PyTorch's VGG loss) or 'l1' (BasicSR's PerceptualLoss as used by ESRGAN and SSL).
    hr features are computed without gradient.
    """

    def __init__(self, conv='54', weights='', rgb_range=255, criterion='mse'):
        super().__init__()
        if criterion not in ('mse', 'l1'):
            raise ValueError(f"criterion must be 'mse' or 'l1', got {criterion!r}")
        self.criterion = criterion
        self.vgg = VGG19Features(conv, load_vgg19_state(weights), rgb_range)

    def forward(self, sr, hr):
        feat_sr = self.vgg(sr)
        with torch.no_grad():
            feat_hr = self.vgg(hr.detach())
        distance = F.mse_loss if self.criterion == 'mse' else F.l1_loss
        return distance(feat_sr.float(), feat_hr.float())
