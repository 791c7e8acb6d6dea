"""Loss type RANK: RankSRGAN's rank-content loss (Zhang et al., ICCV 2019), with the PI
ranker ``Ranker_VGG12_296`` read from ``--ranker_pre_train FILE`` (a plain state_dict, as
the released mmsr_Ranker_PI.pth).

The ranker, a VGG-style network trained to order images by their perceptual index (lower is
better), scores the SR image; the term is ``sum over the batch of sigmoid(R(sr) - bias)``
(bias 0, the SSL config's R_bias; a sum, not a mean, as the official model computes it).
sr is scored in [0, 1].

Default (the paper's term): the ranker is frozen (no parameter gradients, batch norms in
eval mode) and the generator gets the gradient through it, which is what the loss is for.
``--rank_released``: as the released SSL code (ranksrganssl_model.py), the score is computed
under ``torch.no_grad()`` with the ranker left in training mode (batch statistics; its
running statistics drift), so the term is only logged and never trains the generator.

``forward(sr, hr)``: [B, 3, H, W] in [0, rgb_range], square, H >= 32 -> scalar.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

import utility

# Flags only this loss type reads: refused by option.parse_args when no term reads them.
FLAGS = ('ranker_pre_train', 'rank_released')
BIAS = 0.0


class RankerVGG12(nn.Module):
    """RankSRGAN's ranker ``Ranker_VGG12_296``: ten convs (3x3, then 4x4 stride 2; widths
    nf, 2nf, 4nf, 8nf, 8nf; biases everywhere; BatchNorm after all but the first) with
    LeakyReLU(0.2), an average over the last feature map, and Linear(8nf, 100) -
    LeakyReLU - Linear(100, 1).  [B, 3, H, W] in [0, 1] -> [B, 1] scores (lower = better).
    Keys as the released file: conv0_0, conv0_1, bn0_1, ..., conv4_1, bn4_1,
    classifier.0, classifier.2."""

    def __init__(self, n_colors=3, nf=64):
        super().__init__()
        widths = (nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf)
        self.conv0_0 = nn.Conv2d(n_colors, nf, 3, 1, 1)
        self.conv0_1 = nn.Conv2d(nf, nf, 4, 2, 1)
        self.bn0_1 = nn.BatchNorm2d(nf)
        for i in range(1, 5):
            setattr(self, f'conv{i}_0', nn.Conv2d(widths[i - 1], widths[i], 3, 1, 1))
            setattr(self, f'bn{i}_0', nn.BatchNorm2d(widths[i]))
            setattr(self, f'conv{i}_1', nn.Conv2d(widths[i], widths[i], 4, 2, 1))
            setattr(self, f'bn{i}_1', nn.BatchNorm2d(widths[i]))
        self.classifier = nn.Sequential(nn.Linear(widths[4], 100), nn.LeakyReLU(0.2, True),
                                        nn.Linear(100, 1))

    def forward(self, x):
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        feat = act(self.conv0_0(x))
        feat = act(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, 5):
            feat = act(getattr(self, f'bn{i}_0')(getattr(self, f'conv{i}_0')(feat)))
            feat = act(getattr(self, f'bn{i}_1')(getattr(self, f'conv{i}_1')(feat)))
        # a window as tall as the map, as the released network (square inputs)
        feat = F.avg_pool2d(feat, feat.shape[2])
        return self.classifier(feat.flatten(1))


class RankContentLoss(nn.Module):
    """See the module docstring; ``ranker``: a loaded RankerVGG12."""

    def __init__(self, ranker, rgb_range=255, released=False):
        super().__init__()
        self.ranker = ranker
        self.rgb_range = rgb_range
        self.released = released
        self.ranker.requires_grad_(False)
        self.train(True)

    def train(self, mode=True):
        super().train(mode)
        # frozen in eval mode (the paper's term); batch statistics as released
        self.ranker.train(bool(mode) and self.released)
        return self

    def forward(self, sr, hr):
        x = sr.float() / self.rgb_range
        if self.released:
            with torch.no_grad():
                score = self.ranker(x)
        else:
            score = self.ranker(x)
        return torch.sigmoid(score - BIAS).sum()


def make_loss(args):
    path = getattr(args, 'ranker_pre_train', '')
    if not path:
        raise utility.UserError('RANK needs the ranker\'s weights: give --ranker_pre_train FILE '
                                '(a Ranker_VGG12_296 state_dict, e.g. mmsr_Ranker_PI.pth)')
    if args.patch_size < 32:
        raise utility.UserError(f'RANK needs --patch_size >= 32 (its ranker halves the size '
                                f'five times), got {args.patch_size}')
    import model as model_pkg
    ranker = RankerVGG12(args.n_colors)
    source = f'--ranker_pre_train {path}'
    model_pkg.load_state_dict_explained(
        ranker, utility.load_pt(path, source), source,
        hint='give the PI ranker\'s file (a Ranker_VGG12_296 state_dict, e.g. mmsr_Ranker_PI.pth)')
    return RankContentLoss(ranker, rgb_range=args.rgb_range, released=args.rank_released)
