"""FID (Heusel et al. 2017) of a test set at one scale: the SR images against the HR images,
as the SSL paper's script (BasicSR's ``calculate_fid``, the same as pytorch-fid's
``calculate_frechet_distance``).  Lower is better.  A metric of the set, not of an image.

Features: each whole image (no border cropped, as the paper's script reads the saved
images) on the 8-bit grid in [0, 1], float32, resized to 299x299 bilinearly
(``align_corners=False``, no antialiasing), mapped to [-1, 1] by 2x - 1, through the FID
Inception (``_inception``): 2048 pool features, kept in float64.  For each set: means mu
and covariances C (``np.cov``, unbiased) of the SR and the HR features, and
FID = |mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr(sqrtm(C1 C2)) with scipy's ``sqrtm``; when
that is not finite, 1e-6 is added to both diagonals and it is taken again; an imaginary part
of the root is dropped when its diagonal is within 1e-3 of 0 (otherwise the reference
raises: here the value is NaN and the log says why).

With fewer images than 2048 the covariances are singular (rank n - 1): the value is
computed as above all the same, as the reference does, and the log says so.

File: pt_inception-2015-12-05-6726825d.pth (torch hub's checkpoints folder or
``--metric_weights``).
"""
import hashlib
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

import imageops
import utility
from metric import _inception, _perceptual, _weights

LOWER_IS_BETTER = True
RGB_ONLY = True
PER_SET = True
LOG_FORMAT = '.2f'

FEATURES = 2048
EPS = 1e-6


def frechet_distance(mu1, cov1, mu2, cov2):
    """(FID, note) of two Gaussians (float64 numpy); note: '' or what the computation had to
    do ('offset' / 'imaginary part dropped' / why the value is NaN)."""
    notes = []
    with warnings.catch_warnings():
        # Singular products are the rule below 2048 images; the note says so instead.
        warnings.simplefilter('ignore', linalg.LinAlgWarning)
        root = linalg.sqrtm(cov1 @ cov2)
        if not np.isfinite(root).all():
            notes.append(f'sqrtm of the product was not finite: {EPS:g} added to both diagonals')
            offset = np.eye(len(cov1)) * EPS
            root = linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3):
            largest = float(np.max(np.abs(root.imag)))
            return float('nan'), (f'undefined: the square root has an imaginary part of '
                                  f'{largest:.3g} (pytorch-fid and BasicSR raise here)')
        root = root.real
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(root))
    return value, '; '.join(notes)


def statistics(features):
    """(mean [D], covariance [D, D]) of float64 features [N, D], as the reference."""
    return features.mean(axis=0), np.cov(features, rowvar=False)


class FID(torch.nn.Module):
    """reset(); add(sr, hr, scale, benchmark) per image; result() -> (FID, note)."""

    label = 'FID'
    per_set = True

    def __init__(self, rgb_range, weights_dir=''):
        super().__init__()
        self.rgb_range = rgb_range
        self.backbone_file = _weights.backbone_path('fid_inception', weights_dir, 'FID')
        self.net = load_network(self.backbone_file)
        self.register_buffer('_anchor', torch.zeros(0), persistent=False)
        self._hr_cache = {}     # digest of an HR image -> its features (same at every validation)
        self.reset()

    def train(self, mode=True):
        return super().train(False)

    def reset(self):
        self._sr, self._hr = [], []

    @torch.no_grad()
    def features(self, img):
        """[B, 3, H, W] in [0, rgb_range] -> float64 numpy [B, 2048]."""
        device = self._anchor.device
        x = _perceptual.rgb01(img, self.rgb_range).to(device)
        with torch.autocast(device.type, enabled=False), _perceptual._no_tf32():
            x = F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
            return self.net(2 * x - 1).double().cpu().numpy()

    def add(self, sr, hr, scale=None, benchmark=True):
        if sr.dim() == 3:
            sr, hr = sr.unsqueeze(0), hr.unsqueeze(0)
        if sr.shape[1] != 3:
            raise ValueError(f'FID needs RGB images, got {sr.shape[1]} channels')
        self._sr.append(self.features(sr))
        for img in hr:
            key = hashlib.sha1(imageops.to_uint8(img, self.rgb_range).cpu().numpy().tobytes()
                               + str(tuple(img.shape)).encode()).hexdigest()
            if key not in self._hr_cache:
                self._hr_cache[key] = self.features(img[None])
            self._hr.append(self._hr_cache[key])

    def result(self):
        """(FID of the images added since reset, a note for the log)."""
        sr, hr = np.concatenate(self._sr), np.concatenate(self._hr)
        n = len(sr)
        if n < 2:
            raise utility.UserError(f'FID needs at least 2 images per test set, this one has {n}; '
                                    f'drop fid from --metrics or use a larger set')
        value, note = frechet_distance(*statistics(sr), *statistics(hr))
        parts = [f'from {n} SR and {n} HR images']
        if n <= FEATURES:
            parts.append(f'covariances of rank <= {n - 1} < {FEATURES} (singular), computed as '
                         f'pytorch-fid / BasicSR do')
        if note:
            parts.append(note)
        return value, ', '.join(parts)


def load_network(path):
    """The FID Inception holding the weights of ``path``, frozen, eval mode; UserError (one
    line) for another layout.  BN's num_batches_tracked and the classifier are ignored."""
    state = utility.load_pt(path, source=f'{path} (FID)', mmap=True)
    if isinstance(state, dict):
        state = {k: v for k, v in state.items() if not str(k).endswith('num_batches_tracked')}
    expected = _inception.expected_layout()
    problem = utility.layout_problem(state, expected, ignore_prefixes=('fc.',))
    if problem:
        raise utility.UserError(f'{path} {problem}; FID needs the published '
                                f'pt_inception-2015-12-05-6726825d.pth')
    with torch.device('meta'):
        net = _inception.FIDInception()
    net.load_state_dict({k: state[k].detach().float().contiguous().clone() for k in expected},
                        strict=False, assign=True)
    for module in net.modules():   # BN buffers not in the file (num_batches_tracked)
        if isinstance(module, torch.nn.BatchNorm2d):
            module.num_batches_tracked = torch.zeros((), dtype=torch.long)
    return net.eval().requires_grad_(False)


def make_metric(args):
    return FID(args.rgb_range, args.metric_weights)
