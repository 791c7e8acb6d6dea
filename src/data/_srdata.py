"""The dataset base class: HR/LR pairs, training patches, augmentation and the file caches.

An ``SRData`` holds N HR images and, per scale of ``args.scale``, either an LR file or
nothing for each of them; a missing LR is made from the HR (cropped to a multiple of
the scale) with MATLAB-compatible bicubic ``imresize(1/s)`` rounded to 8 bit, and
cached as .npy under ``REPO_ROOT/.cache/lr_bicubic`` (written atomically, so an
interrupted run never leaves a half-written file that is read back).

Items:
* test (``train=False``): ``(lr, hr, name)`` for image i at the scale chosen by
  ``set_scale``; lr float32 [C, h, w], hr [C, s*h, s*w] (HR cropped to the LR times the
  scale), both in [0, rgb_range] with 8-bit values; name = HR file stem.
* train: ``train_item(i, seed, idx_scale)`` gives ``(lr, hr, name, idx_scale)`` with a
  random aligned patch and random hflip/vflip/rot90 unless ``--no_augment``.  Patch sizes
  follow EDSR-PyTorch: with one scale the HR patch is ``patch_size`` (LR
  ``patch_size // s``, HR ``patch_size // s * s``); with several scales (MDSR) the LR patch
  is ``patch_size`` and the HR patch ``s * patch_size``.  Every random draw comes from a
  generator seeded with ``seed`` (a tuple from the sampler), so it does not depend on the
  worker.  With ``--degradation`` other than bicubic the training item is an HR patch of
  ``patch_size // s * s`` only (lr empty): the trainer degrades it.

``--ext sep`` caches decoded image files as .npy under ``REPO_ROOT/.cache/sep`` (never
next to the data, which may be read-only); ``sep+reset`` removes that cache when the
dataset is built on rank 0; ``img`` decodes the files every time.
"""
import hashlib
import io
import shutil

import numpy as np
import torch
from PIL import Image

import utility
from data import _image
from data._loader import report_to_main
import imageops
import lr_set
from imageops import round_half_away
from imresize import imresize

CACHE_ROOT = utility.REPO_ROOT / '.cache'
# Bump when the LR generation changes, to invalidate caches (v2: MATLAB's half-away rounding).
LR_CACHE_VERSION = 'v2'


def short_hash(text, n=10):
    return hashlib.sha1(str(text).encode('utf-8')).hexdigest()[:n]


def bicubic_lr(hr, scale):
    """uint8 [H, W, C] HR -> uint8 [H//s, W//s, C] LR: crop to a multiple of s, resize, round.

    float64 arithmetic as MATLAB's double computation, then MATLAB's uint8 conversion:
    halves round away from zero (``torch.round`` would take them to even, which differs on
    exact .5 ties, about 1 value in 70,000 on the benchmark sets at x2).
    """
    h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    if h == 0 or w == 0:
        raise utility.UserError(f'an image of {hr.shape[1]}x{hr.shape[0]} pixels is smaller '
                                f'than the scale {scale}; remove it from the dataset')
    x = torch.tensor(hr[:h, :w].transpose(2, 0, 1), dtype=torch.float64)
    lr = round_half_away(imresize(x, output_size=(h // scale, w // scale))).clamp_(0, 255)
    return np.ascontiguousarray(lr.to(torch.uint8).numpy().transpose(1, 2, 0))


def bicubic_up(lr, scale):
    """uint8 [h, w, C] LR -> uint8 [s*h, s*w, C]: the Bicubic baseline's saved image (MATLAB
    bicubic ``imresize(s)`` in float64, then the 8-bit grid of ``imageops.quantize``, as the
    evaluation rounds a model's output)."""
    x = torch.tensor(lr.transpose(2, 0, 1), dtype=torch.float64)
    up = imresize(x, output_size=(lr.shape[0] * scale, lr.shape[1] * scale))
    return np.ascontiguousarray(imageops.to_uint8(up, 255).numpy().transpose(1, 2, 0))


def save_npy_atomic(path, array):
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    utility.atomic_write_bytes(path, buffer.getvalue())


def load_npy(path):
    """An array cached by ``save_npy_atomic``, or None when absent or unreadable."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None


def _file_key(path):
    """Changes whenever the file at ``path`` is replaced or edited."""
    st = path.stat()
    return short_hash(f'{path.resolve()}|{st.st_size}|{st.st_mtime_ns}', 12)


class SRData(torch.utils.data.Dataset):
    """HR images with per-scale LR images (files or generated); see the module docstring.

    Subclasses set ``self.hr_paths`` (list of Path), ``self.lr_paths`` (one list per
    scale, Path or None per image) and ``self.cache_id`` (a string naming the dataset
    folder: its name plus a short hash of its absolute path), then call ``finish_setup``;
    in-memory data sets ``self.image_names`` and overrides ``load_hr``/``load_lr``.
    """
    benchmark = False

    def __init__(self, args, name, train, rank=0):
        self.name = name
        self.train = train
        self.scale = list(args.scale)
        self.idx_scale = 0
        self.rgb_range = args.rgb_range
        self.n_colors = args.n_colors
        self.patch_size = args.patch_size
        self.augment = not args.no_augment
        self.ext = args.ext
        self.rank = rank
        # Other degradations than bicubic make the LR in the trainer from HR patches.
        self.hr_only = train and getattr(args, 'degradation', 'bicubic') != 'bicubic'
        # --hr_modcrop: test HR images cropped to a multiple of it before the LR is made.
        self.modcrop = 0 if train else getattr(args, 'hr_modcrop', 0)
        self.hr_paths = []
        self.lr_paths = [[] for _ in self.scale]
        self.cache_id = None
        self.image_names = []

    # -- subclasses call this once their paths are set ------------------------------
    def finish_setup(self):
        if not self.image_names:
            self.image_names = [p.stem for p in self.hr_paths]
        if not self.image_names:
            raise utility.UserError(f'dataset {self.name} has no images')
        if self.ext == 'sep+reset' and self.rank == 0 and self.cache_id:
            shutil.rmtree(CACHE_ROOT / 'sep' / self.cache_id, ignore_errors=True)

    def __len__(self):
        return len(self.image_names)

    def lr_set(self, idx_scale):
        """Which LR images scale index ``idx_scale`` reads (``lr_set.identity``): bicubic here;
        benchmark folders with a degraded set override it."""
        return dict(lr_set.BICUBIC)

    def hr_size(self, i):
        """(width, height) of HR image i: the file's header only (nothing is decoded) when
        it is a file; None when the header cannot be read (reported when the image is)."""
        if i < len(self.hr_paths):
            try:
                with Image.open(self.hr_paths[i]) as im:
                    return im.size
            except Exception:
                return None
        h, w = self.load_hr(i).shape[:2]
        return w, h

    def check_patch_fits(self):
        """UserError naming the first HR image too small for the training patch.

        Called when a training set is opened, so that such an image is not found hours into
        training when it is first drawn.  The smallest HR side: ``patch_size // s * s`` with
        one scale, ``patch_size * s`` with several (MDSR: the patch is the LR side).
        """
        p = self.patch_size
        need = max(p // s * s if len(self.scale) == 1 else p * s for s in self.scale)
        for i in range(len(self)):
            size = self.hr_size(i)
            if size is None or min(size) >= need:
                continue
            side = min(size)
            fits = side if len(self.scale) == 1 else side // max(self.scale)
            hint = (f'use --patch_size {fits} or less, or remove the image' if fits >= 1 else
                    'remove the image')
            raise utility.UserError(
                f'{self.name}/{self.image_names[i]}: HR image {size[0]}x{size[1]} is smaller than '
                f'the HR training patch {need}x{need} (--patch_size {p}, scale '
                f'{"+".join(map(str, self.scale))}); {hint}')

    def set_scale(self, idx_scale):
        """Choose the scale (index into args.scale) of the test items."""
        if not 0 <= idx_scale < len(self.scale):
            raise IndexError(f'idx_scale {idx_scale} out of range for scales {self.scale}')
        self.idx_scale = idx_scale

    # -- reading ---------------------------------------------------------------------
    def read_file(self, path):
        """uint8 [H, W, 1|3] of an image file, through the .npy cache with --ext sep."""
        if not self.ext.startswith('sep') or not self.cache_id:
            return _image.read_image(path)
        cached = CACHE_ROOT / 'sep' / self.cache_id / f'{path.stem}_{_file_key(path)}.npy'
        img = load_npy(cached)
        if img is None:
            img = _image.read_image(path)
            save_npy_atomic(cached, img)
        return img

    def load_hr(self, i):
        """uint8 [H, W, 1|3] HR image i, channels as stored (top-left crop to a multiple of
        ``--hr_modcrop`` for test sets that set it)."""
        hr = self.read_file(self.hr_paths[i])
        m = self.modcrop
        if m and (hr.shape[0] % m or hr.shape[1] % m):
            if hr.shape[0] < m or hr.shape[1] < m:
                raise utility.UserError(f'{self.name}/{self.image_names[i]} is smaller than '
                                        f'--hr_modcrop {m}; remove it or lower --hr_modcrop')
            hr = hr[:hr.shape[0] // m * m, :hr.shape[1] // m * m]
        return hr

    def load_lr(self, i, idx_scale, hr=None):
        """uint8 [h, w, 1|3] LR image i at scale index ``idx_scale``, channels as stored.

        Made from the HR and cached when there is no LR file.
        """
        path = self.lr_paths[idx_scale][i]
        if path is not None:
            return self.read_file(path)
        s = self.scale[idx_scale]
        hr_path = self.hr_paths[i]
        key = _file_key(hr_path) + LR_CACHE_VERSION
        if self.modcrop:
            key += f'mod{self.modcrop}'
        cached = (CACHE_ROOT / 'lr_bicubic' / self.cache_id / f'X{s}'
                  / f'{hr_path.stem}_{short_hash(key, 12)}.npy')
        lr = load_npy(cached)
        if lr is None:
            lr = bicubic_lr(self.load_hr(i) if hr is None else hr, s)
            save_npy_atomic(cached, lr)
        return lr

    def pair(self, i, idx_scale):
        """(lr, hr) uint8 arrays with n_colors channels, HR cropped to LR size times scale."""
        s = self.scale[idx_scale]
        hr = self.load_hr(i)
        lr = self.load_lr(i, idx_scale, hr)
        lh, lw = lr.shape[:2]
        if hr.shape[0] < lh * s or hr.shape[1] < lw * s:
            raise utility.UserError(
                f'{self.name}/{self.image_names[i]}: LR image {lw}x{lh} times scale {s} is larger '
                f'than the HR image {hr.shape[1]}x{hr.shape[0]}; check the X{s} LR folder')
        hr = hr[:lh * s, :lw * s]
        return (_image.set_channels(lr, self.n_colors), _image.set_channels(hr, self.n_colors))

    # -- items -----------------------------------------------------------------------
    @report_to_main
    def __getitem__(self, i):
        lr, hr = self.pair(i, self.idx_scale)
        return (_image.to_tensor(lr, self.rgb_range), _image.to_tensor(hr, self.rgb_range),
                self.image_names[i])

    @report_to_main
    def train_item(self, i, seed, idx_scale):
        """(lr [C, q, q], hr [C, s*q, s*q], name, idx_scale) for image i (q: LR patch size).

        Random draws come from ``np.random.default_rng(seed)`` only.
        """
        rng = np.random.default_rng(seed)
        if self.hr_only:
            return self._hr_item(i, rng, idx_scale)
        lr, hr = self.pair(i, idx_scale)
        s = self.scale[idx_scale]
        lr_patch = self.patch_size if len(self.scale) > 1 else self.patch_size // s
        lr, hr = random_patch(lr, hr, lr_patch, s, rng, f'{self.name}/{self.image_names[i]}',
                              self.patch_size)
        if self.augment:
            lr, hr = random_augment(lr, hr, rng)
        return (_image.to_tensor(lr, self.rgb_range), _image.to_tensor(hr, self.rgb_range),
                self.image_names[i], idx_scale)

    def _hr_item(self, i, rng, idx_scale):
        """(empty lr, hr [C, p, p], name, idx_scale), p = patch_size // s * s."""
        s = self.scale[idx_scale]
        hr = _image.set_channels(self.load_hr(i), self.n_colors)
        hp = self.patch_size // s * s
        h, w = hr.shape[:2]
        if h < hp or w < hp:
            raise utility.UserError(f'{self.name}/{self.image_names[i]}: HR image {w}x{h} is '
                                    f'smaller than the HR patch {hp}x{hp} (--patch_size '
                                    f'{self.patch_size}); use a smaller --patch_size')
        iy = int(rng.integers(0, h - hp + 1))
        ix = int(rng.integers(0, w - hp + 1))
        hr = hr[iy:iy + hp, ix:ix + hp]
        if self.augment:
            hr = random_augment(hr, hr, rng)[1]
        return (torch.empty(0), _image.to_tensor(hr, self.rgb_range), self.image_names[i],
                idx_scale)


def random_patch(lr, hr, lp, scale, rng, what, patch_size):
    """Aligned random crops: LR ``lp`` square, HR ``scale * lp`` square."""
    lh, lw = lr.shape[:2]
    if lh < lp or lw < lp:
        raise utility.UserError(f'{what}: LR image {lw}x{lh} is smaller than the LR patch '
                                f'{lp}x{lp} (--patch_size {patch_size} at x{scale}); use a '
                                'smaller --patch_size')
    iy = int(rng.integers(0, lh - lp + 1))
    ix = int(rng.integers(0, lw - lp + 1))
    hp = lp * scale
    return (lr[iy:iy + lp, ix:ix + lp],
            hr[iy * scale:iy * scale + hp, ix * scale:ix * scale + hp])


def random_augment(lr, hr, rng):
    """The same random horizontal flip, vertical flip and transpose (rot90) on both."""
    hflip, vflip, rot = rng.random(3) < 0.5
    out = []
    for img in (lr, hr):
        if hflip:
            img = img[:, ::-1]
        if vflip:
            img = img[::-1]
        if rot:
            img = img.transpose(1, 0, 2)
        out.append(np.ascontiguousarray(img))
    return out[0], out[1]


def list_images(folder):
    """Sorted image files directly inside ``folder`` (Path)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and _image.is_image_file(p))


def lr_file(lr_dir, hr_path, scale):
    """EDSR-PyTorch's LR name ``<stem>x<s><ext>`` inside ``lr_dir``, or None when absent."""
    for suffix in dict.fromkeys((hr_path.suffix, '.png')):
        candidate = lr_dir / f'{hr_path.stem}x{scale}{suffix}'
        if candidate.is_file():
            return candidate
    return None
