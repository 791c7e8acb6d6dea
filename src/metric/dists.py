"""DISTS (Ding et al. 2020) as DISTS_pytorch computes it, without resizing.  Lower is better
(0 for identical images).

For x, y in [0, 1]: ImageNet mean/std normalisation, then VGG16 with its four max pools
replaced by L2 pooling (square, depthwise 3x3 Hann window [.5 1 .5]^T[.5 1 .5] / 4 with
stride 2 and padding 1, square root of value + 1e-12); six feature sets: the raw input x and
the outputs of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (torchvision features [0:4],
pool + [5:9], pool + [10:16], pool + [17:23], pool + [24:30]).  Per channel of each set, with
spatial means m, population variances v and covariance c:
S1 = (2 mx my + c1) / (mx^2 + my^2 + c1), S2 = (2 cxy + c2) / (vx + vy + c2), c1 = c2 = 1e-6;
DISTS = 1 - sum(alpha S1 + beta S2) with alpha, beta (1475 weights each, from weights.pt)
divided by the sum of both.  It is written here as sum(alpha (1 - S1) + beta (1 - S2)), the
same number without the cancellation, so identical images give exactly 0.

Files: vgg16-397923af.pth (torch hub's checkpoints folder) and DISTS_pytorch's weights.pt.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from metric import _backbones, _perceptual, _weights

LOWER_IS_BETTER = True
RGB_ONLY = True
LOG_FORMAT = '.4f'

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
C1 = C2 = 1e-6
STAGES = ((0, 4), (5, 9), (10, 16), (17, 23), (24, 30))   # the pools at 4, 9, 16, 23 become L2
CHANNELS = (3, 64, 128, 256, 512, 512)


class L2Pool(nn.Module):
    """sqrt(depthwise Hann-window mean of x^2 + 1e-12), stride 2:
    [B, C, H, W] -> [B, C, floor((H - 1) / 2) + 1, floor((W - 1) / 2) + 1]."""

    def __init__(self, channels):
        super().__init__()
        taps = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
        window = taps[:, None] * taps[None, :]
        window = (window / window.sum()).float()
        self.register_buffer('window', window.expand(channels, 1, 3, 3).contiguous(),
                             persistent=False)

    def forward(self, x):
        out = F.conv2d(x * x, self.window, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DISTS(_perceptual.NetworkMetric):
    """forward(sr, hr, scale, benchmark) -> float64 [B]; see the module docstring."""

    label = 'DISTS'

    def __init__(self, rgb_range, weights_dir='', crop='edsr'):
        super().__init__(rgb_range, crop)
        layers, self.backbone_file = _backbones.load_features('vgg16', 30, weights_dir, 'DISTS')
        stages = []
        for i, (a, b) in enumerate(STAGES):
            stages.append(nn.Sequential(*([L2Pool(CHANNELS[i])] if i else []), *layers[a:b]))
        self.stages = nn.ModuleList(stages)
        self.head_file = _weights.head_path('dists', weights_dir, 'DISTS')
        total = sum(CHANNELS)
        w = _weights.load_tensors(self.head_file, 'DISTS',
                                  {'alpha': (1, total, 1, 1), 'beta': (1, total, 1, 1)})
        w_sum = w['alpha'].sum() + w['beta'].sum()
        self.register_buffer('alpha', (w['alpha'] / w_sum).flatten(), persistent=False)
        self.register_buffer('beta', (w['beta'] / w_sum).flatten(), persistent=False)
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.min_side = 1
        self.train(False)

    def features(self, x):
        """[x, relu1_2, relu2_2, relu3_3, relu4_3, relu5_3] for x [B, 3, H, W] in [0, 1]."""
        out = [x]
        h = (x - self.mean) / self.std
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def distance(self, x, y):
        s1, s2 = [], []
        for fx, fy in zip(self.features(x), self.features(y)):
            mx, my = fx.mean(dim=(2, 3)), fy.mean(dim=(2, 3))
            dx, dy = fx - mx[..., None, None], fy - my[..., None, None]
            vx, vy = dx.pow(2).mean(dim=(2, 3)), dy.pow(2).mean(dim=(2, 3))
            cxy = (dx * dy).mean(dim=(2, 3))
            s1.append((2 * mx * my + C1) / (mx * mx + my * my + C1))
            s2.append((2 * cxy + C2) / (vx + vy + C2))
        s1, s2 = torch.cat(s1, dim=1), torch.cat(s2, dim=1)   # [B, 1475]
        return ((1 - s1) * self.alpha).sum(dim=1) + ((1 - s2) * self.beta).sum(dim=1)


def make_metric(args):
    return DISTS(args.rgb_range, args.metric_weights, getattr(args, 'crop_border', 'edsr'))
