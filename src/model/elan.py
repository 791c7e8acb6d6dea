"""ELAN: efficient long-range attention network (Zhang et al., ECCV 2022).

A 3x3 conv, ``m_elan`` efficient long-range attention blocks (ELAB) inside one residual
connection, and a conv + pixel-shuffle tail.  An ELAB is a local feature extractor (two
shift-convs with ReLU between, expansion ``r_expand``) and a group-wise multi-scale
self-attention (GMSA), each with a skip: GMSA projects to 2C channels (1x1 conv, LayerNorm
over channels), splits them in three groups of 2C/3 for windows ``windows[0..2]``, and in
each group the first half gives queries-as-keys q and the second values v: softmax(q q^T)
v per window, no scaling (as the official code); every second block rolls the image by
half a window first and back after.  ``n_share`` > 0 adds blocks that reuse the first
attention maps (shared attention), as the official code allows.

Module names follow the SSL repository's ``basicsr/archs/elan_arch.py`` (the network of
ELAN-GAN; ``ShiftConv2d1``, 'fast-training-speed'), so its files load strictly: the fixed
shift kernels are in the state_dict (``...shift_conv.weight``) as there.  The input is
reflect-padded at the bottom and right to a multiple of the windows' least common multiple
and the output cropped (the network's own padding, training and evaluation alike).  The
network works on [0, 1] images with the DIV2K mean subtracted, times ``img_range`` (255 in
the official configs); input and output are in [0, rgb_range] like every model here.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import utility

SCALES = (2, 3, 4)
MULTI_SCALE = False
INPUT_LARGE = False
UPSAMPLER = ('tail.',)
# Flags only this model reads (refused with another --model).
FLAGS = ('m_elan', 'c_elan', 'elan_windows', 'r_expand', 'n_share', 'elan_img_range')

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
# Channels groups of a shift-conv: right, left, down, up shifts and the identity.
SHIFT_GROUPS = 5


def make_model(args):
    windows = tuple(args.elan_windows)
    if len(windows) != 3:
        raise utility.UserError(f'ELAN: --elan_windows takes three window sides (one per '
                                f'attention group), got {len(windows)}')
    if args.c_elan % 3:
        raise utility.UserError(f'ELAN: --c_elan {args.c_elan} must be a multiple of 3 (three '
                                f'attention groups)')
    if args.m_elan % (1 + args.n_share):
        raise utility.UserError(f'ELAN: --m_elan {args.m_elan} must be a multiple of '
                                f'--n_share + 1 = {1 + args.n_share}')
    if args.n_colors != 3:
        raise utility.UserError('ELAN subtracts the DIV2K RGB mean: it takes --n_colors 3')
    return ELAN(scale=args.scale[0], rgb_range=args.rgb_range, windows=windows,
                m_elan=args.m_elan, c_elan=args.c_elan, n_share=args.n_share,
                r_expand=args.r_expand, img_range=args.elan_img_range)


class ShiftConv(nn.Module):
    """Depth-wise one-pixel shifts of five channel groups, then a 1x1 conv.

    Group k of ``in_ch // 5`` channels (the last group takes the rest) is moved by one pixel
    (k = 0: from the right, 1: from the left, 2: from below, 3: from above, 4: unmoved), with
    zeros entering at the border.
    """

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.in_ch = in_ch
        g = in_ch // SHIFT_GROUPS
        kernel = torch.zeros(in_ch, 1, 3, 3)
        for k, (row, col) in enumerate(((1, 2), (1, 0), (2, 1), (0, 1))):
            kernel[k * g:(k + 1) * g, 0, row, col] = 1.0
        kernel[4 * g:, 0, 1, 1] = 1.0
        self.register_buffer('weight', kernel)
        self.conv1x1 = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x):
        return self.conv1x1(F.conv2d(x, self.weight, padding=1, groups=self.in_ch))


class _ShiftConvHolder(nn.Module):
    # The official ShiftConv2d wraps the op as ``shift_conv``; kept for the key names.
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.shift_conv = ShiftConv(in_ch, out_ch)

    def forward(self, x):
        return self.shift_conv(x)


class LocalFeatures(nn.Module):
    """LFE: shift-conv to ``ratio * ch``, ReLU, shift-conv back to ``ch``."""

    def __init__(self, ch, ratio):
        super().__init__()
        self.conv0 = _ShiftConvHolder(ch, ch * ratio)
        self.conv1 = _ShiftConvHolder(ch * ratio, ch)

    def forward(self, x):
        return self.conv1(F.relu(self.conv0(x)))


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of [B, C, H, W] (the official ``LayerNorm`` wrapper)."""

    def __init__(self, ch):
        super().__init__()
        self.norm = nn.LayerNorm(ch)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _to_windows(x, side):
    """[B, C, H, W] -> [B * (H/side) * (W/side), side * side, C], windows row-major."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // side, side, w // side, side)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(-1, side * side, c)


def _from_windows(x, side, b, h, w):
    """Inverse of _to_windows: [B * nh * nw, side * side, C] -> [B, C, H, W]."""
    c = x.shape[-1]
    x = x.view(b, h // side, w // side, side, side, c)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)


class GroupAttention(nn.Module):
    """GMSA.  ``computes`` True: projects to 2C and returns (y, attention maps); False
    (shared blocks): projects to C values and applies the given maps."""

    def __init__(self, ch, shifted, windows, computes=True):
        super().__init__()
        self.shifted, self.windows, self.computes = shifted, tuple(windows), computes
        width = 2 * ch if computes else ch
        self.splits = [width // 3] * 3
        self.project_inp = nn.Sequential(nn.Conv2d(ch, width, 1), ChannelNorm(width))
        self.project_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x, maps=None):
        b, _, h, w = x.shape
        outs, new_maps = [], []
        for i, part in enumerate(torch.split(self.project_inp(x), self.splits, dim=1)):
            side = self.windows[i]
            if self.shifted:
                # (-side) // 2 forward and side // 2 back, as the official code (they differ
                # by one pixel for odd sides)
                part = torch.roll(part, shifts=((-side) // 2, (-side) // 2), dims=(2, 3))
            if self.computes:
                q, v = _to_windows(part, side).chunk(2, dim=-1)
                attn = (q @ q.transpose(-2, -1)).softmax(dim=-1)
            else:
                v, attn = _to_windows(part, side), maps[i]
            y = _from_windows(attn @ v, side, b, h, w)
            if self.shifted:
                y = torch.roll(y, shifts=(side // 2, side // 2), dims=(2, 3))
            outs.append(y)
            new_maps.append(attn)
        return self.project_out(torch.cat(outs, dim=1)), (new_maps if self.computes else maps)


class ELAB(nn.Module):
    """Efficient long-range attention block: (LFE + skip, GMSA + skip) x (1 + n_share)."""

    def __init__(self, ch, ratio, shifted, windows, n_share=0):
        super().__init__()
        self.modules_lfe = nn.ModuleDict(
            {f'lfe_{i}': LocalFeatures(ch, ratio) for i in range(1 + n_share)})
        self.modules_gmsa = nn.ModuleDict(
            {f'gmsa_{i}': GroupAttention(ch, shifted, windows, computes=(i == 0))
             for i in range(1 + n_share)})

    def forward(self, x):
        maps = None
        for lfe, gmsa in zip(self.modules_lfe.values(), self.modules_gmsa.values()):
            x = lfe(x) + x
            y, maps = gmsa(x, maps)
            x = y + x
        return x


def reflect_pad(x, bottom, right):
    """x [B, C, h, w] extended by ``bottom`` rows and ``right`` columns of its reflection
    (the edge row not repeated): ``F.pad(..., 'reflect')``, the official padding, which
    needs a pad smaller than the side; a longer pad (images smaller than the windows'
    multiple) reflects again about the new edge, and a side of 1 is repeated."""
    for dim, pad in ((-2, bottom), (-1, right)):
        while pad > 0:
            size = x.shape[dim]
            step = min(pad, size - 1)
            pads = [0, 0, 0, 0]
            if step == 0:
                pads[1 if dim == -1 else 3] = pad
                x, pad = F.pad(x, pads, mode='replicate'), 0
                continue
            pads[1 if dim == -1 else 3] = step
            x, pad = F.pad(x, pads, mode='reflect'), pad - step
    return x


class ELAN(nn.Module):
    """forward: LR [B, 3, h, w] in [0, rgb_range] -> SR [B, 3, scale*h, scale*w], nominally
    in [0, rgb_range] (not clamped).  Any h, w: reflect padding to a multiple of the
    windows' lcm (see ``reflect_pad`` and the module docstring)."""

    def __init__(self, scale=4, rgb_range=255, windows=(4, 8, 16), m_elan=36, c_elan=180,
                 n_share=0, r_expand=2, img_range=255.0):
        super().__init__()
        self.scale, self.rgb_range, self.img_range = scale, rgb_range, img_range
        self.multiple = math.lcm(*windows)
        self.register_buffer('mean', torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.head = nn.Sequential(nn.Conv2d(3, c_elan, 3, 1, 1))
        # odd blocks (counting from 1) attend in plain windows, even ones in shifted windows
        self.body = nn.Sequential(*[ELAB(c_elan, r_expand, i % 2 == 1, windows, n_share)
                                    for i in range(m_elan // (1 + n_share))])
        self.tail = nn.Sequential(nn.Conv2d(c_elan, 3 * scale * scale, 3, 1, 1),
                                  nn.PixelShuffle(scale))

    def forward(self, x):
        h, w = x.shape[-2:]
        x = reflect_pad(x / self.rgb_range, -h % self.multiple, -w % self.multiple)
        x = self.head((x - self.mean) * self.img_range)
        x = self.tail(self.body(x) + x)
        x = x / self.img_range + self.mean
        return x[..., :self.scale * h, :self.scale * w] * self.rgb_range
