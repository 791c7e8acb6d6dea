"""LPIPS (Zhang et al. 2018) with the v0.1 linear heads, as ``lpips.LPIPS(net=..., version='0.1')``.

For x, y in [0, 1]: each image goes to [-1, 1] (2x - 1), then through LPIPS's scaling layer
((v - shift) / scale per channel), then the backbone; at each of five stages the features
are divided by their channel-wise L2 norm (+1e-10), squared differences are weighted per
channel by the stage's 1x1 head (no bias), averaged over space and summed over stages.
Stages: AlexNet after ReLU 1..5 (torchvision features [0:2], [2:5], [5:8], [8:10],
[10:12]); VGG16 after relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 ([0:4], [4:9], [9:16],
[16:23], [23:30]).
"""
import torch
import torch.nn as nn

from metric import _backbones, _perceptual, _weights

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10

STAGES = {'alexnet': (0, 2, 5, 8, 10, 12), 'vgg16': (0, 4, 9, 16, 23, 30)}
HEAD = {'alexnet': 'lpips_alex', 'vgg16': 'lpips_vgg'}


class LPIPS(_perceptual.NetworkMetric):
    """forward(sr, hr, scale, benchmark) -> float64 [B]; see the module docstring."""

    def __init__(self, arch, rgb_range, weights_dir='', label='LPIPS', crop='edsr'):
        super().__init__(rgb_range, crop)
        self.label = label
        bounds = STAGES[arch]
        layers, self.backbone_file = _backbones.load_features(arch, bounds[-1], weights_dir, label)
        self.stages = nn.ModuleList(nn.Sequential(*layers[a:b])
                                    for a, b in zip(bounds[:-1], bounds[1:]))
        # The width of a stage's output is that of its last conv.
        widths = [[m for m in stage if isinstance(m, nn.Conv2d)][-1].out_channels
                  for stage in self.stages]
        self.head_file = _weights.head_path(HEAD[arch], weights_dir, label)
        heads = _weights.load_tensors(
            self.head_file, label,
            {f'lin{k}.model.1.weight': (1, c, 1, 1) for k, c in enumerate(widths)})
        for k in range(len(widths)):
            self.register_buffer(f'head{k}', heads[f'lin{k}.model.1.weight'], persistent=False)
        self.register_buffer('shift', torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('scale', torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.min_side = _backbones.min_side(layers)
        self.train(False)

    def features(self, x):
        """Five stage outputs for x [B, 3, H, W] in [0, 1]."""
        h = ((2 * x - 1) - self.shift) / self.scale
        out = []
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def distance(self, x, y):
        total = 0
        for k, (fx, fy) in enumerate(zip(self.features(x), self.features(y))):
            fx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            fy = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            weighted = nn.functional.conv2d((fx - fy) ** 2, getattr(self, f'head{k}'))
            total = total + weighted.mean(dim=(2, 3))
        return total.flatten()
