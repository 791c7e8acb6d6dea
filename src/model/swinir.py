"""SwinIR: image restoration with a Swin Transformer (Liang et al., ICCV workshops 2021).

A 3x3 conv, then residual Swin Transformer groups (RSTB: ``depth`` blocks of window
self-attention and an MLP, every second block on windows shifted by half a window, and a
conv, inside a residual connection), a conv with a skip over the whole trunk, and one of
three reconstruction heads:

* ``pixelshuffle`` (classical SR, SwinIR-M): conv to 64 features, pixel-shuffle stages, conv;
* ``pixelshuffledirect`` (lightweight SR, SwinIR-S): one conv and one pixel shuffle;
* ``nearest+conv`` (real-world SR, x4): two nearest-neighbour x2 stages with convs.

Module and buffer names follow the official ``models/network_swinir.py``, so the released
weight files load strictly: their state_dicts hold, besides the parameters, every block's
``attn.relative_position_index`` and the shifted blocks' ``attn_mask`` (the shifted-window
mask for an ``img_size`` x ``img_size`` input, img_size being the training patch size of the
file).  When loading, ``img_size`` is taken from the file's ``attn_mask`` shape
(:meth:`SwinIR.adapt_to_state_dict`).  Any input size works: the mask of another size is
computed when needed, and the input is mirror-padded to a multiple of the window.

Attention runs through ``torch.nn.functional.scaled_dot_product_attention`` with the relative
position bias (plus the shift mask) as its additive mask: the official arithmetic to float
rounding.  The network works on [0, 1] images with the DIV2K mean subtracted, as the
released weights expect; input and output are in [0, rgb_range] like every model here.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

import utility
from model import common

SCALES = (2, 3, 4, 8)
MULTI_SCALE = False
INPUT_LARGE = False
# Keys of the scale-dependent upsampler (pixelshuffle and pixelshuffledirect heads): when
# training from another scale's weights (--pre_train), these start from scratch.
UPSAMPLER = ('upsample.',)

UPSAMPLERS = ('pixelshuffle', 'pixelshuffledirect', 'nearest+conv')
RESI_CONNECTIONS = ('1conv', '3conv')
# Features of the reconstruction head (hard-coded in the official network).
HEAD_FEATS = 64
# Value the shift mask adds to the scores of token pairs from different image regions.
MASKED_SCORE = -100.0


def eval_pad_multiple(args):
    """Evaluation pads the LR image as the official test script does, for this window."""
    return args.window_size


def make_model(args):
    scale = args.scale[0]
    if args.upsampler == 'nearest+conv' and scale != 4:
        raise utility.UserError(f'SwinIR --upsampler nearest+conv is x4 only, not x{scale}; '
                                f'use --scale 4 or another --upsampler')
    if len(args.depths) != len(args.num_heads):
        raise utility.UserError(f'SwinIR: --depths has {len(args.depths)} entries and '
                                f'--num_heads {len(args.num_heads)}; give one head count per group')
    bad = [h for h in args.num_heads if args.embed_dim % h]
    if bad:
        raise utility.UserError(f'SwinIR: --embed_dim {args.embed_dim} is not divisible by '
                                f'--num_heads {bad[0]}; choose heads that divide it')
    if args.img_size % args.window_size or args.img_size <= args.window_size:
        raise utility.UserError(
            f'SwinIR: --img_size {args.img_size} must be a multiple of --window_size '
            f'{args.window_size} larger than it (the released files use 48 or 64 with window 8)')
    if args.resi_connection == '3conv' and args.embed_dim < 4:
        raise utility.UserError('SwinIR: --resi_connection 3conv needs --embed_dim >= 4')
    return SwinIR(scale=scale, n_colors=args.n_colors, rgb_range=args.rgb_range,
                  img_size=args.img_size, window_size=args.window_size,
                  embed_dim=args.embed_dim, depths=args.depths, num_heads=args.num_heads,
                  mlp_ratio=args.mlp_ratio, upsampler=args.upsampler,
                  resi_connection=args.resi_connection, drop_path=args.drop_path)


# ----------------------------------------------------------------------------- windows

def window_partition(x, window):
    """[B, H, W, C] -> [B * (H/window) * (W/window), window * window, C], windows row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_merge(windows, window, h, w):
    """The inverse of :func:`window_partition`: -> [B, h, w, C]."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(window):
    """[window^2, window^2] int64: the bias-table row of every (query, key) token pair.

    The row is (dy + window - 1) * (2 * window - 1) + (dx + window - 1), with (dy, dx) the
    query's position minus the key's within the window.
    """
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')
    coords = torch.stack([rows.flatten(), cols.flatten()])          # 2, n
    delta = coords[:, :, None] - coords[:, None, :] + (window - 1)  # 2, n, n
    return delta[0] * (2 * window - 1) + delta[1]


def shift_mask(h, w, window, shift, device=None):
    """[nW, window^2, window^2] float32: 0 for token pairs from the same region, -100 otherwise.

    After the cyclic shift by ``shift``, a window at the bottom/right edge holds tokens from
    up to four image regions that were not neighbours; they must not attend to each other.
    Regions: rows [0, h - window), [h - window, h - shift), [h - shift, h), same for columns.
    """
    region = torch.zeros(1, h, w, 1, device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, rows in enumerate(bounds):
        for j, cols in enumerate(bounds):
            region[:, rows, cols, :] = 3 * i + j
    ids = window_partition(region, window).squeeze(-1)              # nW, n
    differ = ids.unsqueeze(1) != ids.unsqueeze(2)
    return torch.zeros(differ.shape, device=device).masked_fill(differ, MASKED_SCORE)


def _drop_path(x, p, training):
    """Stochastic depth: zero a sample's residual branch with probability p, rescale the rest."""
    if p == 0 or not training:
        return x
    keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
    return x * (keep >= p).to(x.dtype) / (1 - p)


# ----------------------------------------------------------------------------- blocks

class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    forward: tokens [B * nW, n, C] (n = window^2), mask [nW, n, n] or None -> [B * nW, n, C].
    """

    def __init__(self, dim, window, num_heads):
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer('relative_position_index', relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x, mask=None):
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads) \
            .permute(2, 0, 3, 1, 4).unbind(0)                      # each [B * nW, heads, n, d]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)] \
            .view(n, n, self.num_heads).permute(2, 0, 1)            # heads, n, n
        if mask is None:
            scores = bias.unsqueeze(0)
        else:
            scores = bias.unsqueeze(0) + mask.unsqueeze(1)          # nW, heads, n, n
            if bw != mask.shape[0]:
                # A 4-d mask with the batch of q keeps CPU attention on its fused kernel
                # (a broadcast 5-d layout falls back to the unfused one, ~2x slower).
                scores = scores.repeat(bw // mask.shape[0], 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=scores.to(q.dtype),
                                             scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    """Linear - GELU - linear on tokens [..., dim]."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm window attention and MLP, each in a residual connection.

    ``shift`` > 0: the windows are cyclically shifted by ``shift`` tokens, and the
    ``attn_mask`` buffer holds the mask for an ``img_size`` x ``img_size`` input (the
    released files store it).  forward: tokens [B, H*W, C], (H, W) multiples of the window.
    """

    def __init__(self, dim, num_heads, window, shift, mlp_ratio, img_size, drop_path):
        super().__init__()
        self.window, self.shift, self.drop_path = window, shift, drop_path
        if shift:
            self.register_buffer('attn_mask', shift_mask(img_size, img_size, window, shift))
        else:
            self.attn_mask = None
        self.img_size = img_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, size, mask):
        """``mask``: the shift mask for ``size`` when it is not the stored one."""
        h, w = size
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
            if size == (self.img_size, self.img_size):
                mask = self.attn_mask  # the stored (possibly loaded) one, as the official net
        else:
            mask = None
        y = self.attn(window_partition(y, self.window), mask)
        y = window_merge(y, self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + _drop_path(y.reshape(b, h * w, c), self.drop_path, self.training)
        return x + _drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class BlockGroup(nn.Module):
    """``depth`` Swin blocks, every second one shifted by half a window (``blocks.N``)."""

    def __init__(self, dim, depth, num_heads, window, mlp_ratio, img_size, drop_paths):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinBlock(dim, num_heads, window, window // 2 if i % 2 else 0, mlp_ratio, img_size,
                      drop_paths[i]) for i in range(depth)])

    def forward(self, x, size, mask):
        for block in self.blocks:
            x = block(x, size, mask)
        return x


def _resi_conv(dim, kind):
    """The conv closing a residual group: one 3x3, or 3x3 -> 1x1 -> 3x3 through dim/4."""
    if kind == '1conv':
        return nn.Conv2d(dim, dim, 3, 1, 1)
    return nn.Sequential(nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(dim // 4, dim, 3, 1, 1))


class RSTB(nn.Module):
    """Residual Swin Transformer block: a block group, then a conv, plus the input.

    forward: tokens [B, H*W, C] -> same.
    """

    def __init__(self, dim, depth, num_heads, window, mlp_ratio, img_size, drop_paths,
                 resi_connection):
        super().__init__()
        self.residual_group = BlockGroup(dim, depth, num_heads, window, mlp_ratio, img_size,
                                         drop_paths)
        self.conv = _resi_conv(dim, resi_connection)

    def forward(self, x, size, mask):
        y = self.residual_group(x, size, mask)
        b, _, c = y.shape
        y = y.transpose(1, 2).reshape(b, c, *size)
        return self.conv(y).flatten(2).transpose(1, 2) + x


class TokenNorm(nn.Module):
    """Feature map [B, C, H, W] -> LayerNorm-ed tokens [B, H*W, C] (the official PatchEmbed
    with patch size 1; its only weights are ``norm``)."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x.flatten(2).transpose(1, 2))


# ----------------------------------------------------------------------------- network

class SwinIR(nn.Module):
    """SwinIR for super-resolution.

    forward: LR [B, n_colors, h, w] in [0, rgb_range] -> SR [B, n_colors, scale*h, scale*w],
    nominally in [0, rgb_range] (not clamped).  Sides that are not multiples of the window
    are mirror-padded at the bottom/right (as :func:`common.mirror_pad`) and the output is
    cropped back.
    """

    def __init__(self, scale=2, n_colors=3, rgb_range=255, img_size=64, window_size=8,
                 embed_dim=180, depths=(6,) * 6, num_heads=(6,) * 6, mlp_ratio=2.0,
                 upsampler='pixelshuffle', resi_connection='1conv', drop_path=0.1):
        super().__init__()
        if upsampler not in UPSAMPLERS or resi_connection not in RESI_CONNECTIONS:
            raise ValueError(f'upsampler {upsampler!r} / resi_connection {resi_connection!r}')
        if upsampler == 'nearest+conv' and scale != 4:
            raise ValueError('nearest+conv upsampling is x4 only')
        self.scale, self.rgb_range, self.upsampler = scale, rgb_range, upsampler
        self.window, self.shift = window_size, window_size // 2
        self.img_size = img_size
        mean = common.DIV2K_RGB_MEAN if n_colors == 3 else (0.0,) * n_colors
        # Not in the official state_dict: a non-persistent buffer (moves with .to()).
        self.register_buffer('mean', torch.tensor(mean).view(1, n_colors, 1, 1),
                             persistent=False)

        self.conv_first = nn.Conv2d(n_colors, embed_dim, 3, 1, 1)
        self.patch_embed = TokenNorm(embed_dim)
        # Stochastic depth grows linearly from 0 to drop_path over all blocks.
        total = sum(depths)
        rates = [drop_path * i / max(total - 1, 1) for i in range(total)]
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList([
            RSTB(embed_dim, d, heads, window_size, mlp_ratio, img_size, rates[s:s + d],
                 resi_connection) for d, heads, s in zip(depths, num_heads, starts)])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi_conv(embed_dim, resi_connection)

        if upsampler == 'pixelshuffle':
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, HEAD_FEATS, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.upsample = common.Upsampler(scale, HEAD_FEATS)
            self.conv_last = nn.Conv2d(HEAD_FEATS, n_colors, 3, 1, 1)
        elif upsampler == 'pixelshuffledirect':
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, scale * scale * n_colors, 3, 1, 1),
                                          nn.PixelShuffle(scale))
        else:
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, HEAD_FEATS, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.conv_up1 = nn.Conv2d(HEAD_FEATS, HEAD_FEATS, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(HEAD_FEATS, HEAD_FEATS, 3, 1, 1)
            self.conv_hr = nn.Conv2d(HEAD_FEATS, HEAD_FEATS, 3, 1, 1)
            self.conv_last = nn.Conv2d(HEAD_FEATS, n_colors, 3, 1, 1)
        self.apply(_init_weights)
        self.register_load_state_dict_pre_hook(self._adapt_before_load)

    # -------------------------------------------------------------- img_size from weights
    def _shifted_blocks(self):
        return [m for m in self.modules() if isinstance(m, SwinBlock) and m.shift]

    def adapt_to_state_dict(self, state_dict, source='state_dict', prefix=''):
        """Take ``img_size`` from the ``attn_mask`` shape in ``state_dict`` (before a load).

        The mask of a file trained on s x s patches is [(s / window)^2, window^2,
        window^2]; the shifted blocks' masks are rebuilt for that size.  UserError when
        the file's mask fits no size.  Called by model.load_state_dict_explained and by
        every load_state_dict (a pre-hook), so resumed EMA copies follow too.
        """
        key = next((k for k in state_dict if k.startswith(prefix) and k.endswith('.attn_mask')),
                   None)
        blocks = self._shifted_blocks()
        if key is None or not blocks or not torch.is_tensor(state_dict[key]):
            return
        shape = tuple(state_dict[key].shape)
        n = self.window * self.window
        windows = round(shape[0] ** 0.5) if len(shape) == 3 else 0
        if len(shape) != 3 or shape[1:] != (n, n) or windows * windows != shape[0] \
                or windows < 2:
            raise utility.UserError(
                f'{source}: {key} has shape {list(shape)}, which fits no --img_size for '
                f'--window_size {self.window} (expected [(img_size/{self.window})^2, {n}, {n}]); '
                f'check --window_size against the weights')
        img_size = windows * self.window
        if img_size == self.img_size:
            return
        # Said in the run log by model.Model: an --img_size given on the command line is
        # replaced by the file's.
        self.load_note = (f'{source}: img_size {img_size} taken from {key} (was {self.img_size}; '
                          f'the attention masks follow the file)')
        for block in blocks:
            block.img_size = img_size
            block.attn_mask = shift_mask(img_size, img_size, self.window, self.shift,
                                         device=block.attn_mask.device)
        self.img_size = img_size

    def _adapt_before_load(self, module, state_dict, prefix, *args):
        self.adapt_to_state_dict(state_dict, prefix=prefix)

    # -------------------------------------------------------------- forward
    def forward_features(self, x):
        """[B, C, H, W] (multiples of the window) -> [B, C, H, W] through the RSTBs."""
        size = tuple(x.shape[-2:])
        mask = None
        if size != (self.img_size, self.img_size):
            # Computed once per forward for every shifted block (the official net does it
            # per block).
            mask = shift_mask(*size, self.window, self.shift, device=x.device)
        tokens = self.patch_embed(x)
        for layer in self.layers:
            tokens = layer(tokens, size, mask)
        tokens = self.norm(tokens)
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, *size)

    def forward(self, x):
        h, w = x.shape[-2:]
        x = common.mirror_pad(x / self.rgb_range, -h % self.window, -w % self.window)
        x = x - self.mean
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        if self.upsampler == 'pixelshuffle':
            x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        elif self.upsampler == 'pixelshuffledirect':
            x = self.upsample(x)
        else:
            x = self.conv_before_upsample(x)
            for conv in (self.conv_up1, self.conv_up2):
                x = F.leaky_relu(conv(F.interpolate(x, scale_factor=2, mode='nearest')), 0.2)
            x = self.conv_last(F.leaky_relu(self.conv_hr(x), 0.2))
        x = x + self.mean
        return x[..., :self.scale * h, :self.scale * w] * self.rgb_range


def _init_weights(m):
    """The official initialisation: linear weights N(0, 0.02) truncated at +-2, zero biases,
    LayerNorm at identity (convs keep PyTorch's default)."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
