"""CLIP-IQA (Wang, Chan, Loy 2023) as pyiqa defines it, ``pyiqa.create_metric('clipiqa')`` and
the SSL repository's copy (``GAN-Based-SR/clipiqa_pyiqa``): OpenAI's CLIP ResNet-50 with five
antonym prompt pairs.  No reference: only the SR image is scored.  Higher is better (0..1).

Input: the SR image on the 8-bit grid, the border cropped (``--crop_border``), float32 k / 255,
normalised with CLIP's mean and std, at its own size (no resizing).  Image features: CLIP's
modified ResNet-50 (three-conv stem, average-pool anti-aliased strides, the attention pool
*without* its positional embedding, pyiqa's ``pos_embedding=False``, so any size works),
L2-normalised.  Text features of the ten prompts 'Good image' / 'bad image', 'Sharp image' /
'blurry image', 'sharp edges' / 'blurry edges', 'High resolution image' / 'low resolution
image', 'Noise-free image' / 'noisy image': CLIP's text transformer (12 causal layers, width
512, QuickGELU) at the end-of-text token, projected, L2-normalised; computed once.  Score:
softmax over each pair of exp(logit_scale) * cosine similarities, the first (positive)
prompt's probability averaged over the five pairs.

The prompts' token ids are stored below (CLIP's BPE tokenizer, lower-cased, start 49406 and
end 49407 tokens, zero-padded to 77), so no vocabulary file is needed; tests check them
against the real tokenizer when it is installed.

File: RN50.pt, OpenAI's CLIP ResNet-50 (its TorchScript archive as ``clip.load`` downloads
it, or a plain state_dict of the same keys), from ``--metric_weights``, torch hub's
checkpoints folder, pyiqa's cache ``$TORCH_HOME/hub/pyiqa/`` or clip's ``~/.cache/clip``.
"""
import warnings
import zipfile

import torch
import torch.nn as nn
import torch.nn.functional as F

import utility
from metric import _perceptual, _weights

LOWER_IS_BETTER = False
NO_REFERENCE = True
RGB_ONLY = True
LOG_FORMAT = '.4f'

PROMPTS = ('Good image', 'bad image', 'Sharp image', 'blurry image', 'sharp edges',
           'blurry edges', 'High resolution image', 'low resolution image', 'Noise-free image',
           'noisy image')
# CLIP's tokenizer of PROMPTS (without the zero padding to CONTEXT).
TOKENS = ((49406, 886, 2867, 49407), (49406, 2103, 2867, 49407), (49406, 8157, 2867, 49407),
          (49406, 21977, 2867, 49407), (49406, 8157, 20938, 49407),
          (49406, 21977, 20938, 49407), (49406, 1400, 9977, 2867, 49407),
          (49406, 1042, 9977, 2867, 49407), (49406, 9307, 268, 1139, 2867, 49407),
          (49406, 33495, 2867, 49407))
CONTEXT, VOCAB, WIDTH, LAYERS, HEADS, EMBED = 77, 49408, 512, 12, 8, 1024
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
# Entries of OpenAI's TorchScript state that are not weights.
_EXTRAS = ('input_resolution', 'context_length', 'vocab_size')


def token_ids():
    """[10, 77] int64 token ids of PROMPTS, as ``clip.tokenize(PROMPTS)``."""
    out = torch.zeros(len(TOKENS), CONTEXT, dtype=torch.long)
    for i, ids in enumerate(TOKENS):
        out[i, :len(ids)] = torch.tensor(ids)
    return out


class Bottleneck(nn.Module):
    """CLIP's ResNet bottleneck: the stride is an average pool before the third conv (and
    before the shortcut's 1x1 conv)."""

    def __init__(self, c_in, planes, stride=1):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride > 1 or c_in != planes * 4:
            # Keys downsample.0 (conv) and downsample.1 (BN); '-1' is the parameter-free pool.
            self.downsample = nn.ModuleDict({'0': nn.Conv2d(c_in, planes * 4, 1, bias=False),
                                             '1': nn.BatchNorm2d(planes * 4)})

    def _pool(self, x):
        return F.avg_pool2d(x, self.stride) if self.stride > 1 else x

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(self._pool(y)))
        short = x
        if self.downsample is not None:
            short = self.downsample['1'](self.downsample['0'](self._pool(x)))
        return F.relu(y + short)


class AttentionPool(nn.Module):
    """Multi-head attention of the mean token over [mean, every position] (no positional
    embedding, pyiqa's default); the mean token's output, projected by c_proj."""

    def __init__(self, dim=2048, heads=32, out=EMBED, grid=7):
        super().__init__()
        self.heads = heads
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, dim))   # unused
        self.k_proj, self.q_proj, self.v_proj = (nn.Linear(dim, dim) for _ in range(3))
        self.c_proj = nn.Linear(dim, out)

    def forward(self, x):
        b, c = x.shape[:2]
        tokens = x.flatten(2).transpose(1, 2)                       # [B, HW, C]
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        d = c // self.heads
        q = self.q_proj(tokens[:, :1]).view(b, 1, self.heads, d).transpose(1, 2)
        k = self.k_proj(tokens).view(b, -1, self.heads, d).transpose(1, 2)
        v = self.v_proj(tokens).view(b, -1, self.heads, d).transpose(1, 2)
        weights = (q * d ** -0.5 @ k.transpose(-2, -1)).softmax(-1)
        return self.c_proj((weights @ v).transpose(1, 2).reshape(b, c))


class ResNet50(nn.Module):
    """CLIP's modified ResNet-50 image encoder: [B, 3, H, W] normalised -> [B, 1024]."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        c_in = 64
        for i, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
            layer = []
            for j in range(blocks):
                layer.append(Bottleneck(c_in, planes, 2 if i and not j else 1))
                c_in = planes * 4
            setattr(self, f'layer{i + 1}', nn.Sequential(*layer))
        self.attnpool = AttentionPool()

    def forward(self, x):
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = F.relu(bn(conv(x)))
        x = F.avg_pool2d(x, 2)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class TextBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(WIDTH, HEADS)
        self.ln_1 = nn.LayerNorm(WIDTH)
        self.mlp = nn.Sequential()
        self.mlp.add_module('c_fc', nn.Linear(WIDTH, WIDTH * 4))
        self.mlp.add_module('gelu', QuickGELU())
        self.mlp.add_module('c_proj', nn.Linear(WIDTH * 4, WIDTH))
        self.ln_2 = nn.LayerNorm(WIDTH)

    def forward(self, x, mask):                    # x: [L, N, D]
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class CLIPRN50(nn.Module):
    """OpenAI's CLIP RN50, state keys as its state_dict (visual.*, transformer.*, ...)."""

    def __init__(self):
        super().__init__()
        self.visual = ResNet50()
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(TextBlock() for _ in range(LAYERS))
        self.token_embedding = nn.Embedding(VOCAB, WIDTH)
        self.positional_embedding = nn.Parameter(torch.zeros(CONTEXT, WIDTH))
        self.ln_final = nn.LayerNorm(WIDTH)
        self.text_projection = nn.Parameter(torch.zeros(WIDTH, EMBED))
        self.logit_scale = nn.Parameter(torch.zeros(()))

    def encode_text(self, ids):
        """[N, 77] token ids -> [N, 1024] features at each sequence's end token."""
        x = (self.token_embedding(ids) + self.positional_embedding).transpose(0, 1)
        mask = torch.full((CONTEXT, CONTEXT), float('-inf'), device=x.device).triu_(1)
        for block in self.transformer.resblocks:
            x = block(x, mask)
        x = self.ln_final(x.transpose(0, 1))
        return x[torch.arange(len(ids)), ids.argmax(dim=-1)] @ self.text_projection


def read_state(path):
    """{key: tensor} of a CLIP file: OpenAI's TorchScript archive (its state_dict is read
    with ``torch.jit.load``: TorchScript, no pickled Python) or a plain state_dict."""
    try:
        with zipfile.ZipFile(path) as z:
            torchscript = any('/code/' in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        torchscript = False
    if torchscript:
        try:
            with warnings.catch_warnings():     # torch.jit is deprecated, still the reader
                warnings.simplefilter('ignore', DeprecationWarning)
                return dict(torch.jit.load(str(path), map_location='cpu').state_dict())
        except Exception as e:     # torch raises many types for a damaged archive
            raise utility.UserError(f'{path} cannot be read as a TorchScript archive '
                                    f'({type(e).__name__}); CLIP-IQA needs OpenAI\'s RN50.pt'
                                    ) from None
    return utility.load_pt(path, source=f'{path} (CLIP-IQA)', mmap=True)


def load_network(path):
    """CLIPRN50 holding the weights of ``path`` (float32, frozen, eval); UserError (one line)
    for another layout (e.g. another CLIP model)."""
    state = read_state(path)
    if isinstance(state, dict):
        state = {k: v for k, v in state.items()
                 if not str(k).endswith('num_batches_tracked') and k not in _EXTRAS}
    with torch.device('meta'):
        net = CLIPRN50()
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()
                if not k.endswith('num_batches_tracked')}
    problem = utility.layout_problem(state, expected)
    if problem:
        raise utility.UserError(f'{path} {problem}; CLIP-IQA needs OpenAI\'s CLIP RN50.pt')
    net.load_state_dict({k: state[k].detach().float().contiguous().clone() for k in expected},
                        strict=False, assign=True)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.num_batches_tracked = torch.zeros((), dtype=torch.long)
    return net.eval().requires_grad_(False)


class CLIPIQA(_perceptual.FrozenMetric):
    """forward(sr, hr, scale, benchmark) -> float64 [B]: CLIP-IQA of each SR image."""

    label = 'CLIPIQA'
    min_side = 32

    def __init__(self, rgb_range, weights_dir='', crop='edsr'):
        super().__init__(rgb_range, crop)
        self.backbone_file = _weights.backbone_path('clip_rn50', weights_dir, 'CLIP-IQA')
        net = load_network(self.backbone_file)
        self.visual = net.visual
        with torch.no_grad():
            text = net.encode_text(token_ids())
        self.register_buffer('text', text / text.norm(dim=-1, keepdim=True), persistent=False)
        self.register_buffer('logit_scale', net.logit_scale.exp(), persistent=False)
        self.register_buffer('mean', torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def score(self, x):
        """[B, 3, H, W] in [0, 1] -> [B] float32."""
        feats = self.visual((x - self.mean) / self.std)
        feats = feats / feats.norm(dim=-1, keepdim=True)
        logits = self.logit_scale * feats @ self.text.t()
        return logits.view(len(x), -1, 2).softmax(dim=-1)[..., 0].mean(dim=1)

    @torch.no_grad()
    def forward(self, sr, hr=None, scale=4, benchmark=True):
        x = self.prepared(sr, scale, benchmark)
        with torch.autocast(x.device.type, enabled=False), _perceptual._no_tf32():
            return self.score(x).double().cpu()


def make_metric(args):
    return CLIPIQA(args.rgb_range, args.metric_weights, getattr(args, 'crop_border', 'edsr'))
