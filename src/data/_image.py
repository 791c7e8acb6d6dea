"""Image files to 8-bit arrays and tensors, with the conversions SR data needs.

``read_image`` returns uint8 [H, W, C] with C = 1 (grayscale) or 3 (RGB):

* grayscale (L, 1-bit) stays one channel; ``set_channels`` replicates it to RGB;
* an alpha channel (RGBA, LA, palette with transparency) is dropped, as EDSR-PyTorch
  does: the stored colours are kept, not composited on a background;
* 16-bit images are scaled to 8 bit with rounding, ``round(v * 255 / 65535)``.  Pillow
  decodes 16-bit colour PNGs to their high bytes only, so for those the low bytes are
  decoded too (same PNG decoder, little-endian unpacker); should that ever fail with a
  future Pillow, the high byte (at most one level below the rounded value) is used;
* palette, CMYK and other modes are converted to RGB;
* an unreadable or corrupt file raises ``utility.UserError`` naming the path.
"""
import numpy as np
import torch
from PIL import Image

import imageops
import utility

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def is_image_file(path):
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith('.')


def _round16(v):
    """uint16-range integers -> uint8, round(v * 255 / 65535) with halves up."""
    v = np.clip(v.astype(np.int64), 0, 65535)
    return ((v * 255 + 32767) // 65535).astype(np.uint8)


def _colour16(path, im):
    """Full 16-bit values of a 16-bit colour PNG that Pillow opened as 8-bit, or None."""
    tile = getattr(im, 'tile', None)
    if im.format != 'PNG' or not tile or len(tile) != 1:
        return None
    t = tuple(tile[0])                                 # (codec, extents, offset, args)
    rawmode = t[3] if isinstance(t[3], str) else (t[3][0] if t[3] else '')
    if not isinstance(rawmode, str) or not rawmode.endswith(';16B'):
        return None
    try:
        high = np.asarray(im)
        with Image.open(path) as low_im:
            low_rawmode = rawmode[:-1] + 'L'   # unpack the second byte of each sample
            args = low_rawmode if isinstance(t[3], str) else (low_rawmode,) + tuple(t[3][1:])
            low_tile = type(tile[0])(t[0], t[1], t[2], args)
            low_im.tile = [low_tile]
            low = np.asarray(low_im)
    except Exception:   # a Pillow without that unpacker: keep the high byte
        return None
    if low.shape != high.shape or low.dtype != np.uint8:
        return None
    return high.astype(np.uint16) * 256 + low


def read_image(path):
    """Read an image file as uint8 [H, W, C], C = 1 (gray) or 3 (RGB).

    Raises:
        utility.UserError: the file is missing, unreadable or not an image.
    """
    try:
        with Image.open(path) as im:
            im.seek(0)                                 # first frame of multi-frame files
            mode = im.mode
            if mode in ('I;16', 'I;16B', 'I;16L', 'I'):
                return _round16(np.asarray(im))[..., None]
            if mode in ('RGB', 'RGBA', 'LA'):
                full = _colour16(path, im)
                if full is not None:
                    return _round16(full[..., :3] if mode != 'LA' else full[..., :1])
            if mode == 'F':
                raise utility.UserError(f'{path}: floating-point images are not supported; '
                                        'convert it to an 8- or 16-bit PNG')
            if mode in ('1', 'L', 'LA', 'La'):
                arr = np.asarray(im.convert('L'))[..., None]
            else:                                       # RGB, RGBA, P, PA, CMYK, YCbCr, ...
                arr = np.asarray(im.convert('RGBA') if mode in ('P', 'PA') else im)
                if arr.ndim != 3 or arr.shape[2] < 3:
                    arr = np.asarray(im.convert('RGB'))
                arr = arr[..., :3]
            return np.array(arr, dtype=np.uint8, order='C')    # a writable copy
    except utility.UserError:
        raise
    except FileNotFoundError:
        raise utility.UserError(f'image not found: {path}') from None
    except Exception as e:
        raise utility.UserError(f'cannot read image {path} ({type(e).__name__}: {e}); '
                                'replace or remove the file') from None


def rgb_to_y_uint8(img):
    """uint8 [H, W, 3] RGB -> uint8 [H, W, 1] BT.601 Y (16..235), MATLAB's rgb2ycbcr rounding."""
    rgb = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(torch.float64)
    return imageops.rgb_to_y(rgb).to(torch.uint8).numpy().transpose(1, 2, 0)


def set_channels(img, n_colors):
    """uint8 [H, W, 1|3] -> uint8 [H, W, n_colors]: gray is replicated, RGB goes to Y for 1."""
    c = img.shape[2]
    if c == n_colors:
        return img
    if n_colors == 3:
        return np.repeat(img, 3, axis=2)
    return rgb_to_y_uint8(img)


def to_tensor(img, rgb_range):
    """uint8 [H, W, C] -> float32 [C, H, W] in [0, rgb_range] (8-bit values)."""
    # A fresh C-order copy: flipped patches have negative strides (numpy keeps them even on
    # size-1 axes, where it calls the array contiguous), which torch cannot take.
    t = torch.from_numpy(img.transpose(2, 0, 1).copy(order='C')).to(torch.float32)
    return t.mul_(rgb_range / 255.0)
