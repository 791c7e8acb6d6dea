"""Real-ESRGAN's second-order degradation, configured by a preset's ``PARAMS``.

For HR [B, 3, H, W] in [0, 1] (H, W multiples of the scale s), as Real-ESRGAN's
``RealESRGANModel.feed_data``:

  (USM-sharpen the HR, when the preset says so) -> blur k1 -> resize (up/down/keep, area/
  bilinear/bicubic) -> Gaussian or Poisson noise, colour or gray -> clamp -> JPEG
  -> blur k2 (with probability ``second_blur_prob``) -> resize to (H/s, W/s) x a random
  factor -> noise -> one of: [resize to (H/s, W/s) + sinc + JPEG] or [JPEG + resize + sinc]
  -> round to 8 bit.
A preset with ``second_order_prob`` (the SSL paper's test-set script) runs the second stage
with that probability (per batch); otherwise the first stage's output is resized to
(H/s, W/s) with the first resize's mode and rounded.

Which draws are per batch and which per sample follows Real-ESRGAN: the resize types,
factors and modes, the noise kind (Gaussian or Poisson), whether the second blur applies and
the final order are drawn once per batch (one tensor has one size); kernels, noise strength,
gray or colour noise, the noise fields and JPEG qualities are drawn per sample.  JPEG
qualities are integers (libjpeg's), drawn uniformly from the preset's range, ends included.

Randomness: every draw comes from generators seeded by explicit keys (tuples of ints):
``batch_key`` for the per-batch draws and one ``sample_key`` per sample for the rest
(numpy ``default_rng(key)`` for parameters, a ``torch.Generator`` seeded from the key for
the noise fields).  Nothing reads or advances a global random state.
"""
import math

import numpy as np
import torch

from degradation import _ops

_PARAMS, _NOISE = 0, 1          # separate streams of one key


def key_rng(key, stream):
    """numpy Generator for ``key`` (tuple of ints >= 0) and ``stream``."""
    return np.random.default_rng([int(k) for k in key] + [stream])


def key_torch_generator(key, stream, device):
    """torch.Generator on ``device`` seeded from ``key`` and ``stream`` (63-bit seed)."""
    words = np.random.SeedSequence([int(k) for k in key] + [stream]).generate_state(2, np.uint32)
    seed = (int(words[0]) << 31 | int(words[1]) >> 1) & (2 ** 63 - 1)
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def _draw_resize(rng, prob, factor_range):
    p = np.asarray(prob, dtype=np.float64)
    kind = ('up', 'down', 'keep')[int(rng.choice(3, p=p / p.sum()))]
    if kind == 'up':
        factor = float(rng.uniform(1.0, factor_range[1]))
    elif kind == 'down':
        factor = float(rng.uniform(factor_range[0], 1.0))
    else:
        factor = 1.0
    mode = _ops.RESIZE_MODES[int(rng.integers(0, 3))]
    return {'type': kind, 'factor': factor, 'mode': mode}


def _draw_noise_strength(rng, stage, kind):
    gray = bool(rng.random() < stage['gray_noise_prob'])
    if kind == 'gaussian':
        return {'type': kind, 'sigma': float(rng.uniform(*stage['noise_range'])), 'gray': gray}
    return {'type': kind, 'scale': float(rng.uniform(*stage['poisson_scale_range'])),
            'gray': gray}


def _draw_stage_kernel(rng, stage):
    return _ops.draw_blur_kernel(rng, stage['kernel_sizes'], stage['kernel_list'],
                                 stage['kernel_prob'], stage['sinc_prob'], stage['blur_sigma'],
                                 stage['betag_range'], stage['betap_range'])


def _draw_quality(rng, quality_range):
    return int(rng.integers(int(quality_range[0]), int(quality_range[1]) + 1))


class SecondOrder:
    """The pipeline for one preset and one scale.

    ``params``: the preset's PARAMS dict (see realesrgan.py for the keys).
    """

    def __init__(self, params, scale):
        self.p = params
        self.scale = int(scale)
        self.kernel_pad = int(params['kernel_pad'])
        self._usm = None

    # ------------------------------------------------------------------ draws
    def draw(self, batch_key, sample_keys):
        """Parameters of a batch: a list (one dict per sample, JSON-able)."""
        p = self.p
        rng = key_rng(batch_key, _PARAMS)
        batch = {
            'resize1': _draw_resize(rng, p['stage1']['resize_prob'], p['stage1']['resize_range']),
            'noise1': 'gaussian' if rng.random() < p['stage1']['gaussian_noise_prob']
            else 'poisson',
            'blur2_applied': bool(rng.random() < p['second_blur_prob']),
            'resize2': _draw_resize(rng, p['stage2']['resize_prob'], p['stage2']['resize_range']),
            'noise2': 'gaussian' if rng.random() < p['stage2']['gaussian_noise_prob']
            else 'poisson',
            'final_order': 'resize_sinc_jpeg' if rng.random() < 0.5 else 'jpeg_resize_sinc',
            'final_mode': _ops.RESIZE_MODES[int(rng.integers(0, 3))],
        }
        # Drawn last, and only by presets that have it, so the others draw what they drew.
        second = ('second_order_prob' not in p
                  or bool(rng.random() < p['second_order_prob']))
        out = []
        for key in sample_keys:
            r = key_rng(key, _PARAMS)
            s1, s2, fin = p['stage1'], p['stage2'], p['final']
            sample = {
                'usm_before': bool(p['usm_before']),
                'kernel1': _draw_stage_kernel(r, s1),
                'resize1': dict(batch['resize1']),
                'noise1': _draw_noise_strength(r, s1, batch['noise1']),
                'jpeg1': _draw_quality(r, s1['jpeg_range']),
                'kernel2': _draw_stage_kernel(r, s2),
                'resize2': dict(batch['resize2']),
                'noise2': _draw_noise_strength(r, s2, batch['noise2']),
                'jpeg2': _draw_quality(r, s2['jpeg_range']),
                'final': {'order': batch['final_order'], 'mode': batch['final_mode']},
            }
            sample['kernel2']['applied'] = batch['blur2_applied']
            if 'second_order_prob' in p:
                sample['second_order'] = second
            if r.random() < fin['sinc_prob']:
                size = int(r.choice(list(fin['kernel_sizes'])))
                sample['final']['sinc'] = {'size': size,
                                           'omega_c': float(r.uniform(np.pi / 3, np.pi))}
            else:
                sample['final']['sinc'] = None
            out.append(sample)
        return out

    # ------------------------------------------------------------------ apply
    def _kernels(self, params, name, device, dtype):
        ks = []
        for sp in params:
            d = sp[name] if name != 'sinc' else sp['final']['sinc']
            if d is None:                       # identity (a pulse)
                k = np.zeros((1, 1))
                k[0, 0] = 1.0
            elif name == 'sinc':
                k = _ops.sinc_kernel(d['size'], d['omega_c'])
            else:
                k = _ops.make_kernel(d)
            ks.append(_ops.pad_kernel(k, self.kernel_pad))
        return torch.from_numpy(np.stack(ks)).to(device=device, dtype=dtype)

    def _noise(self, img, params, stage, gens):
        out = []
        for i, sp in enumerate(params):
            n = sp[stage]
            x = img[i]
            if n['type'] == 'gaussian':
                noise = _ops.gaussian_noise(x.shape, n['sigma'], n['gray'], gens[i], x.device,
                                            x.dtype)
            else:
                noise = _ops.poisson_noise(x, n['scale'], n['gray'], gens[i])
            out.append(torch.clamp(x + noise, 0, 1))
        return torch.stack(out)

    @staticmethod
    def _jpeg(img, params, name):
        img = torch.clamp(img, 0, 1)
        return torch.stack([_ops.jpeg(img[i], (sp[name] if name != 'final'
                                               else sp['jpeg2']))
                            for i, sp in enumerate(params)])

    def apply(self, hr, params, sample_keys):
        """hr [B, C, H, W] in [0, 1] (H, W multiples of the scale) -> lr [B, C, H/s, W/s]
        in [0, 1] on the 8-bit grid, for the drawn ``params`` of ``draw``.
        """
        b, _, h, w = hr.shape
        s = self.scale
        if h % s or w % s:
            raise ValueError(f'HR size {h}x{w} is not a multiple of the scale {s}')
        dev, dt = hr.device, hr.dtype
        gens = [key_torch_generator(k, _NOISE, dev) for k in sample_keys]
        out = hr
        if self.p['usm_before']:
            out = self.usm(out)
        # first stage
        out = _ops.filter2d(out, self._kernels(params, 'kernel1', dev, dt))
        r = params[0]['resize1']
        out = _ops.resize(out, (max(1, int(h * r['factor'])), max(1, int(w * r['factor']))),
                          r['mode'])
        out = self._noise(out, params, 'noise1', gens)
        out = self._jpeg(out, params, 'jpeg1')
        if not params[0].get('second_order', True):
            # first order only (the SSL generate script): straight to the LR size, with the
            # first resize's mode
            return _ops.round8(_ops.resize(out, (h // s, w // s), r['mode']))
        # second stage
        if params[0]['kernel2']['applied']:
            out = _ops.filter2d(out, self._kernels(params, 'kernel2', dev, dt))
        r = params[0]['resize2']
        out = _ops.resize(out, (max(1, int(h / s * r['factor'])), max(1, int(w / s * r['factor']))),
                          r['mode'])
        out = self._noise(out, params, 'noise2', gens)
        # final: [resize back + sinc] and JPEG, in the drawn order
        fin = params[0]['final']
        sinc = self._kernels(params, 'sinc', dev, dt)
        if fin['order'] == 'resize_sinc_jpeg':
            out = _ops.filter2d(_ops.resize(out, (h // s, w // s), fin['mode']), sinc)
            out = self._jpeg(out, params, 'final')
        else:
            out = self._jpeg(out, params, 'final')
            out = _ops.filter2d(_ops.resize(out, (h // s, w // s), fin['mode']), sinc)
        return _ops.round8(out)

    def usm(self, img):
        """USM-sharpened img (BasicSR's USMSharp), the kernel made once per device."""
        if self._usm is None or self._usm.device != img.device or self._usm.dtype != img.dtype:
            self._usm = torch.from_numpy(_ops.usm_kernel_1d()).to(img.device, img.dtype)
        return _ops.usm_sharpen(img, kernel_1d=self._usm)

    def __call__(self, hr, batch_key, sample_keys):
        """(lr, params) for hr [B, C, H, W] in [0, 1]; see ``draw`` and ``apply``."""
        if len(sample_keys) != hr.shape[0]:
            raise ValueError(f'{len(sample_keys)} sample keys for a batch of {hr.shape[0]}')
        params = self.draw(batch_key, sample_keys)
        with torch.no_grad():
            return self.apply(hr, params, sample_keys), params


def describe(sample):
    """A short human-readable line of one sample's drawn parameters (for the preview)."""
    def kernel(k):
        if k['type'] == 'sinc':
            return f'sinc{k["size"]} wc={k["omega_c"]:.2f}'
        text = f'{k["type"]}{k["size"]} s={k["sigma_x"]:.2f}'
        if k['type'].endswith('aniso'):
            text += f'/{k["sigma_y"]:.2f} th={math.degrees(k["theta"]):.0f}'
        if 'beta' in k:
            text += f' b={k["beta"]:.2f}'
        return text

    def noise(n):
        v = f'sigma={n["sigma"]:.1f}' if n['type'] == 'gaussian' else f'scale={n["scale"]:.2f}'
        return f'{n["type"][:5]}{" gray" if n["gray"] else ""} {v}'

    r1, r2, fin = sample['resize1'], sample['resize2'], sample['final']
    if not sample.get('second_order', True):
        return [f'1: {kernel(sample["kernel1"])}',
                f'   {r1["type"]} x{r1["factor"]:.2f} {r1["mode"]}, {noise(sample["noise1"])}, '
                f'q{sample["jpeg1"]}', '2: none (first order only)']
    k2 = kernel(sample['kernel2']) if sample['kernel2']['applied'] else 'none'
    sinc = 'sinc' + str(fin['sinc']['size']) if fin['sinc'] else 'no sinc'
    return [f'1: {kernel(sample["kernel1"])}',
            f'   {r1["type"]} x{r1["factor"]:.2f} {r1["mode"]}, {noise(sample["noise1"])}, '
            f'q{sample["jpeg1"]}',
            f'2: {k2}',
            f'   {r2["type"]} x{r2["factor"]:.2f} {r2["mode"]}, {noise(sample["noise2"])}',
            f'F: {fin["order"].replace("_", "+")} {fin["mode"]} {sinc} q{sample["jpeg2"]}']
