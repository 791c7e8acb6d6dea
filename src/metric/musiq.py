"""MUSIQ (Ke et al. 2021, multi-scale image quality transformer) as pyiqa defines it,
``pyiqa.create_metric('musiq')`` (the KonIQ-10k model), the SSL paper's script.  No
reference: only the SR image is scored.  Higher is better (about 0..100).

Input: the SR image on the 8-bit grid, the border cropped (``--crop_border``), float32
k / 255, mapped to [-1, 1] by 2x - 1.  Three scales: the image resized (bicubic,
``align_corners=False``, no antialiasing, values not clamped) so its longer side is 224,
then 384 (the other side ``round(side * ratio)``), and the image itself.  Each is cut into
32x32 patches with stride 32 after TensorFlow 'same' zero padding (the extra pixel, if odd,
at the end); a patch carries its hashed position (row and column mapped to a 10x10 grid by
nearest-neighbour interpolation of 0..9, index row * 10 + column), its scale (0, 1, 2) and a
mask; the two resized scales are padded with empty patches (all zero, mask 0) to
ceil(side / 32)^2 patches, the original scale keeps all of its patches.

Network: per patch a ResNet root (7x7/2 weight-standardised conv - weights minus their mean,
divided by their unbiased std + 1e-5 - with 'same' padding, GroupNorm(32, eps 1e-6), ReLU,
3x3/2 max pool after 'same' zero padding) and one bottleneck (1x1, 3x3, 1x1 weight-
standardised convs 64-64-256 with GroupNorm(32, eps 1e-4), a projected shortcut), flattened
in height, width, channel order to 16384 values and embedded linearly to 384; plus the
hashed position and scale embeddings; a class token; 14 pre-norm transformer blocks
(LayerNorm eps 1e-6, 6 heads, attention logits of pairs involving a masked patch set to
-1000, MLP 1152 with exact GELU); LayerNorm; a linear head on the class token: the score.

File: musiq_koniq_ckpt-e95806b9.pth (torch hub's checkpoints folder, pyiqa's cache
``$TORCH_HOME/hub/pyiqa/`` or ``--metric_weights``), the state_dict of pyiqa's MUSIQ.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import utility
from metric import _perceptual, _weights

LOWER_IS_BETTER = False
NO_REFERENCE = True
RGB_ONLY = True
LOG_FORMAT = '.2f'

PATCH = 32
GRID = 10
SIDES = (224, 384)
DIM, MLP, HEADS, LAYERS = 384, 1152, 6, 14


def same_pad(x, kernel, stride):
    """TensorFlow's 'same' zero padding of [B, C, H, W] for a kernel and stride."""
    h, w = x.shape[-2:]
    rows = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    cols = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, (cols // 2, cols - cols // 2, rows // 2, rows - rows // 2))


class WSConv(nn.Conv2d):
    """Weight-standardised conv with 'same' padding (no bias)."""

    def forward(self, x):
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(same_pad(x, self.kernel_size[0], self.stride[0]), w, None, self.stride)


class Bottleneck(nn.Module):
    def __init__(self, c_in=64, c_out=256):
        super().__init__()
        self.conv1 = WSConv(c_in, c_in, 1, bias=False)
        self.gn1 = nn.GroupNorm(32, c_in, eps=1e-4)
        self.conv2 = WSConv(c_in, c_in, 3, bias=False)
        self.gn2 = nn.GroupNorm(32, c_in, eps=1e-4)
        self.conv3 = WSConv(c_in, c_out, 1, bias=False)
        self.gn3 = nn.GroupNorm(32, c_out, eps=1e-4)
        self.conv_proj = WSConv(c_in, c_out, 1, bias=False)
        self.gn_proj = nn.GroupNorm(32, c_out, eps=1e-4)

    def forward(self, x):
        y = F.relu(self.gn1(self.conv1(x)))
        y = F.relu(self.gn2(self.conv2(y)))
        return F.relu(self.gn3(self.conv3(y)) + self.gn_proj(self.conv_proj(x)))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.key, self.value, self.out = (nn.Linear(DIM, DIM) for _ in range(4))

    def forward(self, x, mask):
        b, n, _ = x.shape
        q, k, v = (f(x).view(b, n, HEADS, -1).transpose(1, 2)
                   for f in (self.query, self.key, self.value))
        logits = q @ k.transpose(-2, -1) * (DIM // HEADS) ** -0.5
        pair = mask[:, None, :, None] & mask[:, None, None, :]
        logits = logits.masked_fill(~pair, -1e3)
        return self.out((logits.softmax(-1) @ v).transpose(1, 2).reshape(b, n, DIM))


class MLPBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(DIM, MLP), nn.Linear(MLP, DIM)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class EncoderBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(DIM, eps=1e-6)
        self.attention = Attention()
        self.norm2 = nn.LayerNorm(DIM, eps=1e-6)
        self.mlp = MLPBlock()

    def forward(self, x, mask):
        x = x + self.attention(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class _PositionEmbedding(nn.Module):
    def __init__(self, n, dim, name):
        super().__init__()
        self.name = name
        self.register_parameter(name, nn.Parameter(torch.zeros(n, dim)))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.posembed_input = nn.Module()
        self.posembed_input.position_emb = nn.Parameter(torch.zeros(1, GRID * GRID, DIM))
        self.scaleembed_input = nn.Module()
        self.scaleembed_input.scale_emb = nn.Parameter(torch.zeros(len(SIDES) + 1, DIM))
        self.cls = nn.Parameter(torch.zeros(1, 1, DIM))
        self.encoder_norm = nn.LayerNorm(DIM, eps=1e-6)
        self.transformer = nn.ModuleDict({f'encoderblock_{i}': EncoderBlock()
                                          for i in range(LAYERS)})

    def forward(self, x, position, scale, mask):
        x = x + self.posembed_input.position_emb[0][position]
        x = x + self.scaleembed_input.scale_emb[scale]
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1)
        mask = torch.cat([mask.new_ones(len(x), 1), mask], dim=1)
        for block in self.transformer.values():
            x = block(x, mask)
        return self.encoder_norm(x)


def _grid_index(count):
    """[count] hashed grid coordinate of each of ``count`` patches along one side."""
    grid = torch.arange(GRID, dtype=torch.float32).view(1, 1, GRID)
    return F.interpolate(grid, size=count, mode='nearest').view(count).long()


def patches(x, scale_id, max_len=None):
    """[1, 3, H, W] in [-1, 1] -> (patch pixels [1, L, 3 * 32 * 32], position [1, L],
    scale [1, L], mask [1, L] bool); padded with empty patches to ``max_len``."""
    h, w = x.shape[-2:]
    rows, cols = math.ceil(h / PATCH), math.ceil(w / PATCH)
    pix = F.unfold(same_pad(x, PATCH, PATCH), PATCH, stride=PATCH).transpose(1, 2)
    pos = (_grid_index(rows)[:, None] * GRID + _grid_index(cols)[None, :]).view(1, -1)
    n = pix.shape[1]
    scale = torch.full((1, n), scale_id, dtype=torch.long)
    mask = torch.ones(1, n, dtype=torch.bool)
    if max_len is not None:
        if n > max_len:
            pix, pos, scale, mask = pix[:, :max_len], pos[:, :max_len], scale[:, :max_len], \
                mask[:, :max_len]
        extra = max_len - pix.shape[1]
        pix = F.pad(pix, (0, 0, 0, extra))
        pos, scale = F.pad(pos, (0, extra)), F.pad(scale, (0, extra))
        mask = F.pad(mask, (0, extra))
    return pix, pos.to(x.device), scale.to(x.device), mask.to(x.device)


def multiscale(x):
    """The three scales' patches of one image [1, 3, H, W] in [-1, 1], concatenated."""
    h, w = x.shape[-2:]
    parts = []
    for scale_id, side in enumerate(SIDES):
        ratio = side / max(h, w)
        size = (round(h * ratio), round(w * ratio))
        resized = F.interpolate(x, size=size, mode='bicubic', align_corners=False)
        parts.append(patches(resized, scale_id, math.ceil(side / PATCH) ** 2))
    parts.append(patches(x, len(SIDES)))
    return [torch.cat(p, dim=1) for p in zip(*parts)]


class MUSIQNet(nn.Module):
    """[1, 3, H, W] in [0, 1] -> [1] score; state keys those of pyiqa's MUSIQ (num_class 1)."""

    def __init__(self):
        super().__init__()
        self.conv_root = WSConv(3, 64, 7, stride=2, bias=False)
        self.gn_root = nn.GroupNorm(32, 64, eps=1e-6)
        self.block1 = Bottleneck(64, 256)
        self.embedding = nn.Linear(256 * (PATCH // 4) ** 2, DIM)
        self.transformer_encoder = Encoder()
        self.head = nn.Linear(DIM, 1)

    def forward(self, img):
        pix, pos, scale, mask = multiscale((img - 0.5) * 2)
        n = pix.shape[1]
        y = pix.reshape(n, 3, PATCH, PATCH)
        y = F.relu(self.gn_root(self.conv_root(y)))
        y = F.max_pool2d(same_pad(y, 3, 2), 3, 2)
        y = self.block1(y)                                   # [n, 256, 8, 8]
        y = self.embedding(y.permute(0, 2, 3, 1).reshape(1, n, -1))
        y = self.transformer_encoder(y, pos, scale, mask)
        return self.head(y[:, 0]).view(1)


class MUSIQ(_perceptual.FrozenMetric):
    """forward(sr, hr, scale, benchmark) -> float64 [B]: MUSIQ of each SR image (hr unused)."""

    label = 'MUSIQ'

    def __init__(self, rgb_range, weights_dir='', crop='edsr'):
        super().__init__(rgb_range, crop)
        self.backbone_file = _weights.backbone_path('musiq_koniq', weights_dir, 'MUSIQ')
        self.net = load_network(self.backbone_file, MUSIQNet, 'MUSIQ',
                                'musiq_koniq_ckpt-e95806b9.pth')

    @torch.no_grad()
    def forward(self, sr, hr=None, scale=4, benchmark=True):
        x = self.prepared(sr, scale, benchmark)
        with torch.autocast(x.device.type, enabled=False), _perceptual._no_tf32():
            return torch.cat([self.net(img[None]) for img in x]).double().cpu()


def load_network(path, cls, what, published):
    """``cls()`` holding the state_dict of ``path`` (a 'module.' prefix is dropped), frozen,
    eval mode; UserError (one line) for another layout."""
    state = utility.load_pt(path, source=f'{path} ({what})', mmap=True)
    if isinstance(state, dict):
        state = {(k[7:] if str(k).startswith('module.') else k): v for k, v in state.items()}
    with torch.device('meta'):
        net = cls()
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    problem = utility.layout_problem(state, expected)
    if problem:
        raise utility.UserError(f'{path} {problem}; {what} needs the published {published}')
    net.load_state_dict({k: state[k].detach().float().contiguous().clone() for k in expected},
                        assign=True)
    return net.eval().requires_grad_(False)


def make_metric(args):
    return MUSIQ(args.rgb_range, args.metric_weights, getattr(args, 'crop_border', 'edsr'))
