"""Model registry and the wrapper that training and evaluation call.

``--model NAME`` is the file ``src/model/<name.lower()>.py``; it defines
``make_model(args) -> nn.Module`` and may declare its traits (defaults in brackets):

* ``SCALES`` [(2, 3, 4)]: the scales it can be built for, None = any;
* ``MULTI_SCALE`` [False]: one network serves every scale of ``--scale``, chosen with
  ``set_scale(idx)``; otherwise ``--scale`` must name a single scale;
* ``INPUT_LARGE`` [False]: the network wants the LR image bicubic-upsampled to HR size;
* ``pretrained_url(args)``: the URL of published weights for ``--pre_train download``;
* ``UPSAMPLER`` [()]: key prefixes of the scale-dependent upsampler; a training run with
  ``--pre_train`` weights of another scale starts those from scratch (named in the log),
  every other key must fit.  ``--test_only`` loads strictly.
* ``eval_pad_multiple(args)`` [none]: in evaluation the LR image is padded at the bottom
  and right with its mirror image by ``(h // m + 1) * m - h`` rows and likewise columns (1
  to m: a side that is a multiple of m still gets m), and the output cropped to
  ``scale * h x scale * w`` (SwinIR's official test script, m = its window);

* ``AUX_OUTPUTS`` [()]: names of the auxiliary outputs the network returns in training
  besides the SR image: its forward then returns a dict ``{'sr': image, name: tensor, ...}``
  (in evaluation the wrapper keeps ``'sr'`` only), and loss terms that declare a name in
  their ``NEEDS`` receive that output (the step protocol: see ``loss/__init__.py``);
* ``RAW_OUTPUTS`` [()]: those of the auxiliary outputs that are not images in
  [0, rgb_range] (e.g. a diffusion step's noise), which the loss passes on unscaled;
* ``TRAIN_INPUTS`` [()]: step inputs the network takes in training besides the LR image,
  as keyword arguments (``'hr'``: e.g. a diffusion model noises the HR image);

and the network may define ``adapt_to_state_dict(state_dict, source)``, called before a
strict load to rebuild what depends on the file's shapes (SwinIR's img_size); a
``load_note`` it sets is written to the run log; and ``from_other_layout(state_dict)``,
which returns a file's state_dict under the network's own key names when the file is in
another published layout (RRDBNet: the old ESRGAN / mmsr names of BebyGAN's files), and
the state_dict unchanged otherwise.

:class:`Model` wraps the network: it loads ``--pre_train``, and in eval mode applies
``--self_ensemble`` (x8 geometric ensemble) and ``--chop`` (overlapping tiles).  Its
``state_dict()`` has the bare network's keys (EDSR-PyTorch's ``model_latest.pt`` layout).
"""
import contextlib
import functools
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

import registry
import utility
from model import common

MODEL_DIR = Path(__file__).resolve().parent
PRETRAINED_DIR = utility.REPO_ROOT / '.cache' / 'pretrained'
DEFAULT_SCALES = (2, 3, 4)
# Overlap (LR pixels) kept around every tile of --chop, EDSR-PyTorch's choice: outputs
# match the untiled forward exactly where the receptive field is within it.
CHOP_SHAVE = 10

_PREFIXES = ('module.', '_orig_mod.')
# Keys under which checkpoints wrap a state_dict: ours and EDSR-PyTorch-style ('model'),
# Lightning-style ('state_dict'), BasicSR ('params_ema' preferred over 'params').
_WRAPPER_KEYS = ('model', 'state_dict', 'params_ema', 'params')


# ----------------------------------------------------------------------------- registry

def available_models():
    """Lower-case names of the files in src/model/ that define ``make_model``."""
    return registry.names('model', 'make_model')


def get_module(name):
    """The module for ``--model name`` (case-insensitive); UserError listing the models."""
    return registry.load('model', name, 'make_model', '--model')


def model_traits(module):
    """(scales or None, multi_scale, input_large) declared by a model module."""
    return (getattr(module, 'SCALES', DEFAULT_SCALES), bool(getattr(module, 'MULTI_SCALE', False)),
            bool(getattr(module, 'INPUT_LARGE', False)))


def step_traits(module):
    """(aux_outputs, raw_outputs, train_inputs) declared by a model module (tuples)."""
    return tuple(getattr(module, 'AUX_OUTPUTS', ())), tuple(getattr(module, 'RAW_OUTPUTS', ())), \
        tuple(getattr(module, 'TRAIN_INPUTS', ()))


def check_scales(name, module, scales):
    """UserError when the model cannot serve the list ``scales`` (from --scale)."""
    supported, multi_scale, _ = model_traits(module)
    joined = '+'.join(str(s) for s in scales)
    if len(scales) > 1 and not multi_scale:
        raise utility.UserError(
            f'--model {name} serves one scale per network, got --scale {joined}; '
            f'run one scale at a time (e.g. --scale {scales[0]})')
    bad = [s for s in scales if supported is not None and s not in supported]
    if bad:
        raise utility.UserError(
            f'--model {name} supports --scale {"/".join(str(s) for s in supported)}, '
            f'not {"/".join(str(s) for s in bad)}')


def make_net(args):
    """The bare network for ``args`` (registry lookup and scale check, no weights)."""
    module = get_module(args.model)
    check_scales(args.model, module, args.scale)
    return module.make_model(args)


# ----------------------------------------------------------------------------- loading

def _strip_prefixes(key):
    """Remove leading DDP ('module.') and torch.compile ('_orig_mod.') prefixes."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def extract_state_dict(obj, source='state_dict'):
    """The plain ``{name: tensor}`` inside ``obj``, with prefixes stripped.

    ``obj`` is a state_dict or a dict wrapping one under 'model', 'state_dict',
    'params_ema' or 'params' (e.g. our checkpoint.pt).  UserError when it is neither.
    """
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise utility.UserError(
            f'{source} holds no state_dict (a dict of tensors, possibly under a '
            f'"model" or "state_dict" key); give a file saved from a model\'s state_dict()')
    return {_strip_prefixes(k): v for k, v in obj.items()}


def _summary(items, limit=4):
    shown = ', '.join(items[:limit])
    more = f' and {len(items) - limit} more' if len(items) > limit else ''
    return f'{len(items)} ({shown}{more})'


def load_state_dict_explained(net, state_dict, source='state_dict', lenient=(), hint=None):
    """Load ``state_dict`` into ``net`` strictly, explaining any mismatch.

    Prefixes 'module.' / '_orig_mod.' are stripped and wrapping dicts unwrapped (see
    :func:`extract_state_dict`).  Missing, unexpected and wrong-shape keys are listed
    in one UserError line (a few names each, then a count), except keys starting with
    one of the ``lenient`` prefixes (a model's scale-dependent upsampler, when
    fine-tuning from another scale): those keep the model's own initial values.
    hint: what the error line says to do (default: check --model, --scale and size flags).
    Returns the sorted list of such skipped keys (empty for a strict load).
    """
    weights = extract_state_dict(state_dict, source)
    convert = getattr(net, 'from_other_layout', None)
    if convert is not None:
        weights = convert(weights)
    adapt = getattr(net, 'adapt_to_state_dict', None)
    if adapt is not None:
        adapt(weights, source)
    expected = net.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    wrong = [k for k, v in expected.items() if k in weights and weights[k].shape != v.shape]
    skipped = sorted(k for k in missing + unexpected + wrong if k.startswith(tuple(lenient)))
    if skipped:
        missing, unexpected, wrong = ([k for k in keys if k not in skipped]
                                      for keys in (missing, unexpected, wrong))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append('missing keys ' + _summary(missing))
        if unexpected:
            parts.append('unexpected keys ' + _summary(unexpected))
        if wrong:
            parts.append('wrong shapes (file vs model) ' + _summary(
                [f'{k} {list(weights[k].shape)} vs {list(expected[k].shape)}' for k in wrong]))
        hint = hint or ('check --model, --scale and the size flags (--n_resblocks, '
                        '--n_feats, ...) against the weights')
        raise utility.UserError(
            f'{source} does not fit {type(net).__name__}: {"; ".join(parts)}; {hint}')
    if skipped:
        kept = {k: v for k, v in weights.items() if k not in skipped}
        kept.update({k: v for k, v in expected.items() if k in skipped})
        net.load_state_dict(kept, strict=True)
    else:
        net.load_state_dict(weights, strict=True)
    return skipped


def _first_line(error):
    text = str(error).strip().splitlines()
    return f'{type(error).__name__}: {text[0] if text else ""}'.rstrip(': ')


def read_weights(path, source=None):
    """The weights in ``path`` (weights-only, on the CPU); UserError if missing/unreadable."""
    return utility.load_pt(path, source, missing='give the path of saved weights (a '
                                                 'state_dict .pt file) or "download"')


def download_pretrained(module, args):
    """(url, state_dict) of the published weights for ``args``; cached in .cache/pretrained."""
    url_for = getattr(module, 'pretrained_url', None)
    if url_for is None:
        raise utility.UserError(f'--pre_train download: no published weights are known for '
                                f'--model {args.model}; give --pre_train PATH instead')
    url = url_for(args)
    cached = PRETRAINED_DIR / url.rsplit('/', 1)[-1]
    try:
        if not cached.is_file():
            # download_url_to_file writes a temporary file and renames it when complete
            # (and, unlike load_state_dict_from_url, prints nothing before it connects).
            PRETRAINED_DIR.mkdir(parents=True, exist_ok=True)
            digest = re.search(r'-([a-f0-9]{6,})\.', cached.name)
            torch.hub.download_url_to_file(url, str(cached), progress=True,
                                           hash_prefix=digest.group(1) if digest else None)
    except OSError as e:  # URLError, HTTPError, timeouts, refused connections
        reason = getattr(e, 'reason', None) or _first_line(e)
        raise utility.UserError(
            f'--pre_train download: cannot fetch {url} ({reason}); connect to the internet, '
            f'or download the file yourself and give --pre_train PATH') from None
    except Exception as e:
        raise utility.UserError(
            f'--pre_train download: {url} did not download ({_first_line(e)}); delete it from '
            f'{PRETRAINED_DIR} and retry, or give --pre_train PATH') from None
    return url, read_weights(cached, f'--pre_train download ({cached})')


# ----------------------------------------------------------------------------- inference

def _spans(n, shave):
    """Tiles along one side of n LR pixels: (tile_start, tile_end, keep_start, keep_end).

    Two halves overlapping by ``shave`` on each side of the cut; a side shorter than
    ``4 * shave`` is not cut, because its tiles would hardly shrink.
    """
    if n < max(2, 4 * shave):
        return [(0, n, 0, n)]
    mid = n // 2
    return [(0, mid + shave, 0, mid), (mid - shave, n, mid, n)]


def forward_tiled(fn, x, scale, max_area, shave=CHOP_SHAVE):
    """``fn(x)`` computed on overlapping tiles (EDSR's --chop), to bound memory.

    x: LR [..., h, w]; fn maps [..., a, b] to [..., C, scale*a, scale*b].  The image is
    cut into 2x2 tiles (each extended by ``shave`` pixels past the cut) recursively
    until a tile's area is <= ``max_area`` or it is too small to cut; of every tile
    only the part up to the cut is kept.  Equal to ``fn(x)`` wherever fn's receptive
    field (in LR pixels) is within ``shave``.
    """
    h, w = x.shape[-2:]
    rows, cols = _spans(h, shave), _spans(w, shave)
    if h * w <= max_area or len(rows) == len(cols) == 1:
        return fn(x)
    s = scale
    out = None
    for t0, t1, k0, k1 in rows:
        for u0, u1, l0, l1 in cols:
            y = forward_tiled(fn, x[..., t0:t1, u0:u1], scale, max_area, shave)
            if tuple(y.shape[-2:]) != (s * (t1 - t0), s * (u1 - u0)):
                raise RuntimeError(f'--chop: a {t1 - t0}x{u1 - u0} tile gave '
                                   f'{tuple(y.shape[-2:])}, expected x{s}')
            if out is None:
                out = y.new_empty(*y.shape[:-2], s * h, s * w)
            out[..., s * k0:s * k1, s * l0:s * l1] = \
                y[..., s * (k0 - t0):s * (k1 - t0), s * (l0 - u0):s * (l1 - u0)]
    return out


def forward_x8(fn, x):
    """Geometric self-ensemble: the mean of ``fn`` over the 8 flips/transposes of x.

    Each output is mapped back by the inverse transform before averaging, so the
    result is equivariant: ensembling a flipped image gives the flipped ensemble.
    """
    total = None
    for t in range(8):
        transpose, flip_h, flip_w = bool(t & 4), bool(t & 2), bool(t & 1)
        y = x.transpose(-2, -1) if transpose else x
        if flip_h:
            y = y.flip(-2)
        if flip_w:
            y = y.flip(-1)
        y = fn(y.contiguous()).float()  # accumulate in float32 also under autocast
        if flip_w:
            y = y.flip(-1)
        if flip_h:
            y = y.flip(-2)
        if transpose:
            y = y.transpose(-2, -1)
        total = y if total is None else total + y
    return total / 8


# ----------------------------------------------------------------------------- wrapper

def _drop_wrapper_prefix(module, state_dict, prefix, local_metadata):
    """state_dict post-hook: 'model.head.0.weight' -> 'head.0.weight' (bare-net layout)."""
    inner = prefix + 'model.'
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner):]] = state_dict.pop(key)


def _add_wrapper_prefix(module, state_dict, prefix, local_metadata, strict, missing_keys,
                        unexpected_keys, error_msgs):
    """load_state_dict pre-hook: the inverse of :func:`_drop_wrapper_prefix`."""
    inner = prefix + 'model.'
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(inner)]:
        state_dict[inner + key[len(prefix):]] = state_dict.pop(key)


def sr_of(out):
    """The SR image of a network's output: the tensor itself, or the 'sr' entry of the dict
    that a network with auxiliary outputs returns."""
    return out['sr'] if isinstance(out, Mapping) else out


def _main_output(run, lr):
    """The SR image of ``run(lr)``: a network with auxiliary outputs may return its dict in
    evaluation too (tiles and ensemble views then combine images only)."""
    return sr_of(run(lr))


class Model(nn.Module):
    """The network of ``--model`` on ``device``, with --pre_train, --self_ensemble, --chop.

    ``forward(lr, idx_scale, **inputs)``: LR [B, C, h, w] in [0, rgb_range] -> SR
    [B, C, s*h, s*w], s = args.scale[idx_scale] (float, not clamped); in training a network
    with ``AUX_OUTPUTS`` returns its dict (``'sr'`` and the auxiliary outputs), and
    ``inputs`` (the module's ``TRAIN_INPUTS``, e.g. ``hr``) reach the network.  Attributes
    ``aux_outputs``, ``raw_outputs``, ``train_inputs``: the module's step traits.  ``state_dict()`` and
    ``load_state_dict()`` use the bare network's keys, also when the wrapper is nested
    in DDP or torch.compile.
    """

    def __init__(self, args, device='cpu'):
        super().__init__()
        module = get_module(args.model)
        _, self.multi_scale, self.input_large = model_traits(module)
        self.aux_outputs, self.raw_outputs, self.train_inputs = step_traits(module)
        self.name = args.model
        self.scale = list(args.scale)
        self.self_ensemble = bool(args.self_ensemble)
        self.chop = bool(args.chop)
        self.chop_size = args.chop_size
        self.chop_shave = CHOP_SHAVE
        pad_for = getattr(module, 'eval_pad_multiple', None)
        self.eval_pad = pad_for(args) if pad_for is not None else None
        self.model = make_net(args).to(device)
        self.register_state_dict_post_hook(_drop_wrapper_prefix)
        self.register_load_state_dict_pre_hook(_add_wrapper_prefix)
        self.loaded_from = None
        self.load_note = None   # a line for the run log about skipped weights
        if args.pre_train:
            if args.pre_train == 'download':
                url, weights = download_pretrained(module, args)
                source = f'--pre_train download ({url})'
            else:
                source = f'--pre_train {args.pre_train}'
                weights = read_weights(args.pre_train, source)
            # Training may start from another scale's weights (EDSR's x3/x4-from-x2
            # recipe): only the upsampler, which the module names, may then differ.
            lenient = () if args.test_only else getattr(module, 'UPSAMPLER', ())
            skipped = load_state_dict_explained(self.model, weights, source, lenient)
            self.loaded_from = source
            notes = [getattr(self.model, 'load_note', None)]   # e.g. SwinIR's img_size
            if skipped:
                notes.append(f'{source}: {len(skipped)} upsampler weights of another '
                             f'shape or absent in the file start from scratch: '
                             f'{", ".join(skipped)}')
            self.load_note = '; '.join(n for n in notes if n) or None

    def get_model(self):
        """The bare network (what ``model/model_latest.pt`` stores the state_dict of)."""
        return self.model

    def trainable_parameters(self):
        """Parameters with requires_grad (empty for Bicubic: nothing to train)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    @contextlib.contextmanager
    def weights_of(self, net):
        """Run with the network ``net`` (same architecture, e.g. the EMA average) in place of
        the wrapped one until the block ends (``None``: keep the wrapped one)."""
        if net is None:
            yield self
            return
        live = self.model
        self.model = net
        try:
            yield self
        finally:
            self.model = live

    def load(self, source, name=None):
        """Load weights strictly from a path or a (possibly wrapped) state_dict."""
        if isinstance(source, Mapping):
            load_state_dict_explained(self.model, source, name or 'state_dict')
        else:
            load_state_dict_explained(self.model, read_weights(source, name), name or str(source))
        return self

    def forward(self, lr, idx_scale=0, **inputs):
        scale = self.scale[idx_scale]
        if self.multi_scale and hasattr(self.model, 'set_scale'):
            self.model.set_scale(idx_scale)
        run = functools.partial(self._forward_net, scale=scale)
        if self.training:
            return run(lr, **inputs)
        run = functools.partial(_main_output, run)
        if self.chop:
            run = functools.partial(forward_tiled, run, scale=scale,
                                    max_area=self.chop_size, shave=self.chop_shave)
        if self.self_ensemble:
            return forward_x8(run, lr)
        return run(lr)

    def _forward_net(self, lr, scale, **inputs):
        if self.input_large:
            from imresize import imresize
            lr = imresize(lr, scale=scale)
        if self.training:
            return self.model(lr, **inputs)
        if not self.eval_pad:
            return self.model(lr)
        # Every tile of --chop and every view of --self_ensemble is padded on its own.
        m, (h, w) = self.eval_pad, lr.shape[-2:]
        padded = common.mirror_pad(lr, (h // m + 1) * m - h, (w // m + 1) * m - w)
        return self.model(padded)[..., :scale * h, :scale * w]
