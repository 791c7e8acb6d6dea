"""Loss package: the ``--loss`` string, the registry of loss types, and the composite loss.

``--loss`` string
    Terms ``weight*TYPE`` joined by ``+``, spaces allowed around every token, e.g.
    ``1*L1 + 0.1*SSL + 1*SPL``.  A weight is a positive finite decimal number (1, 0.1, 1e3,
    1.5e-2, 1e+3).  TYPE is matched case-insensitively and reported in upper case.  Each type
    may appear once (give the summed weight instead of repeating it).  ``parse_loss_string``
    refuses anything else with ``utility.UserError`` and one line naming the offending part
    and the valid types.

Registry
    Type T is the file ``src/loss/<t>.py`` (lower-case name) that defines ``make_loss(args)
    -> nn.Module``; files starting with '_' are helpers.  Nothing is imported to check a
    name: the files are listed and read, so a bad string is refused before any heavy module
    (a compiled op, VGG weights) is touched.  A term's class may declare traits:

    * ``NEEDS`` [()]: names of the step inputs it takes besides (sr, hr), passed as keyword
      arguments: ``forward(sr, hr, age=..., lr=...)``.  The inputs a step offers (see
      ``STEP_INPUTS``): ``age`` (training progress in epochs, for SPL), ``lr`` (the LR batch),
      ``sr_ema`` (the EMA generator's output of the same batch, no gradient; needs
      --ema_decay), and every auxiliary output the model declares (``AUX_OUTPUTS`` in its
      file, e.g. SPSR's gradient branch, a diffusion step's noise).  The trainer hands over
      only what some term declares (``Loss.needs()``), so nothing is computed for nothing.
    * ``OWN_OPTIMIZER`` [False]: a term with an optimiser of its own (a GAN term) has
      ``set_lr(lr)``, called through ``Loss.set_lr``.
    * ``FLAGS`` [()], at module level: the command-line flags only this kind of term reads;
      ``option.parse_args`` refuses such a flag when no term of --loss reads it.

Units (``--loss_range``)
    Terms see images in [0, loss_range]: EDSR-PyTorch's convention (the default,
    loss_range = rgb_range) gives L1 in 8-bit pixel units; BasicSR, KAIR and the official
    SSL code compute every term on images in [0, 1], so their recipes set
    ``loss_range=1`` and their weights mean what they mean there at any --rgb_range.  The
    composite rescales sr, hr and every image input once (``x * loss_range / rgb_range``)
    and builds its terms as if --rgb_range were loss_range; a model names its outputs that
    are not images in its ``RAW_OUTPUTS`` (e.g. predicted noise), which are passed as they
    are.  Terms that normalise by the range themselves (VGG, GAN, SSL) give the same values
    either way; pixel terms (L1, MSE, SPL) are divided by rgb_range (MSE by its square).

Composite ``Loss(args)`` -- what the trainer uses::

    loss = Loss(args).to(device)          # builds every term of args.loss
    loss.load_state_dict(ckpt['loss']); loss.load_log_state(ckpt['loss_log'])   # on resume
    loss.start_epoch()                     # zero the running sums
    for each batch:
        total = loss(sr, hr, age=age, lr=lr, ...)   # scalar: sum of weight * term; the
                                           # keyword inputs are those of loss.needs()
        if the batch is skipped: loss.discard_last()       # keep it out of the means
        bar.set_postfix_str(loss.display(loss.last()))     # this batch
        every --print_every batches: log(loss.display())   # epoch means so far
    means = loss.end_epoch()               # {'L1': .., 'SPL': .., 'Total': ..}, into history
    ckpt['loss'] = loss.state_dict()       # term state (e.g. a discriminator + optimizer)
    ckpt['loss_log'] = loss.log_state()    # plain python: loads with weights_only=True
    for name, title, series in loss.curves():   # loss_<TYPE>.png / .pdf per term (+ Total)
        exp.plot_curves(name, title, "Weighted loss (epoch mean)", series)
    loss.set_lr(lr)                        # terms with their own optimiser follow the schedule

All logged values are weighted (weight * term), as they enter the total.  ``history`` maps
each type and 'Total' to its list of epoch means (index 0 = first epoch).
"""
import math
import re
from importlib import import_module

import torch
import torch.nn as nn

import registry
import utility

TOTAL = 'Total'

# A decimal number, optional sign (so "-1" is reported as not positive rather than garbled).
_NUMBER = re.compile(r'[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?')
# The text of a term so far when a '+' there is an exponent sign ("1e+3"), not a separator.
_MANTISSA_E = re.compile(r'\s*[+-]?(?:\d+\.?\d*|\.\d+)[eE]')


def available_types():
    """Sorted upper-case names of the loss types: ``src/loss/<t>.py`` defining make_loss."""
    return sorted(name.upper() for name in registry.names('loss', 'make_loss'))


def _split_terms(text):
    """Split ``text`` at the '+' signs between terms; an exponent sign stays in its weight."""
    parts, start = [], 0
    for i, char in enumerate(text):
        if char == '+' and not _MANTISSA_E.fullmatch(text[start:i]):
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_loss_string(text, types=None):
    """``'1*L1+0.1*SSL'`` -> ``[(1.0, 'L1'), (0.1, 'SSL')]``, in the order given.

    types: the valid upper-case type names (default: ``available_types()``).
    Raises utility.UserError (one line: the offending part and the valid types) for an empty
    string or term, a term that is not ``weight*TYPE``, a weight that is not a positive
    finite number, an unknown type, or a type given twice.
    """
    types = available_types() if types is None else sorted(types)

    def refuse(problem):
        raise utility.UserError(
            f'--loss {text!r}: {problem}; write weight*TYPE terms joined by "+" '
            f'(e.g. 1*L1+0.1*SSL); valid types: {", ".join(types) or "(none found)"}')

    if not text.strip():
        refuse('the string is empty')
    terms = []
    for part in _split_terms(text):
        term = part.strip()
        if not term:
            refuse('empty term (a "+" at an end or two in a row)')
        pieces = [p.strip() for p in term.split('*')]
        if len(pieces) != 2:
            refuse(f'term {term!r} is not weight*TYPE')
        weight_text, name = pieces
        if not weight_text:
            refuse(f'term {term!r} has no weight before "*"')
        if not name:
            refuse(f'term {term!r} has no type after "*"')
        weight = float(weight_text) if _NUMBER.fullmatch(weight_text) else math.nan
        if not math.isfinite(weight):
            refuse(f'weight {weight_text!r} in term {term!r} is not a positive finite '
                   f'number (e.g. 1, 0.1, 1e-3)')
        if weight <= 0:
            refuse(f'weight {weight_text!r} in term {term!r} must be > 0 (drop a term '
                   f'rather than weighting it 0)')
        canonical = name.upper()
        if canonical not in types:
            refuse(f'unknown loss type {name!r}')
        if any(canonical == t for _, t in terms):
            refuse(f'type {canonical} is given twice (give it once with the summed weight)')
        terms.append((weight, canonical))
    return terms


# The inputs a training step can offer a term besides (sr, hr), before the model's own
# auxiliary outputs (see the module docstring).
STEP_INPUTS = ('age', 'lr', 'sr_ema')
# Step inputs that are not images (passed without rescaling to --loss_range).
_NOT_IMAGES = ('age',)


def term_needs(term):
    """The step inputs a term module takes besides (sr, hr): its ``NEEDS`` trait."""
    return tuple(getattr(term, 'NEEDS', ()))


def loss_range(args):
    """The range of the images the loss terms see: --loss_range, or --rgb_range when unset."""
    value = getattr(args, 'loss_range', 0) or 0
    return float(value) if value > 0 else float(args.rgb_range)


class Loss(nn.Module):
    """Weighted sum of the loss terms of ``args.loss``, with per-term logs (module docstring).

    args: parsed options (``args.loss`` and whatever each term's make_loss reads).
    raw_outputs: names of model outputs that are not images (the model's ``RAW_OUTPUTS``),
    handed to terms without rescaling to --loss_range.
    Attributes: ``terms`` (nn.ModuleDict TYPE -> term module, in --loss order),
    ``weights`` (dict TYPE -> float), ``history`` (dict TYPE/'Total' -> list of epoch means),
    ``factor`` (loss_range / rgb_range: what images are multiplied by before the terms).
    """

    def __init__(self, args, raw_outputs=()):
        super().__init__()
        terms = args.loss_terms     # parsed once, by option.parse_args
        self.weights = {name: float(weight) for weight, name in terms}
        self.range = loss_range(args)
        self.factor = self.range / float(args.rgb_range)
        self.raw = frozenset(_NOT_IMAGES) | frozenset(raw_outputs)
        # Terms are built as if the data were in [0, loss_range]: that is what they see.
        term_args = args if self.factor == 1 else args.replace(rgb_range=self.range)
        self.terms = nn.ModuleDict()
        for _, name in terms:
            module = import_module('.' + name.lower(), __name__).make_loss(term_args)
            if not isinstance(module, nn.Module):
                raise TypeError(f'loss.{name.lower()}.make_loss returned '
                                f'{type(module).__name__}, not an nn.Module')
            self.terms[name] = module
        self.history = {key: [] for key in self._keys()}
        self._last = {}
        self.start_epoch()

    def _keys(self):
        return list(self.terms) + [TOTAL]

    def _shown_keys(self):
        # With one term the total repeats it; show it only when it adds something.
        return self._keys() if len(self.terms) > 1 else list(self.terms)

    def describe(self):
        """The terms as one line, e.g. '1 * L1 + 0.1 * SSL'."""
        return ' + '.join(f'{self.weights[name]:g} * {name}' for name in self.terms)

    def needs(self):
        """The step inputs some term takes besides (sr, hr), in first-asked order."""
        seen = []
        for term in self.terms.values():
            seen.extend(n for n in term_needs(term) if n not in seen)
        return tuple(seen)

    def check_inputs(self, offered, hints=None):
        """UserError (one line) when a term needs an input that the run cannot offer.

        offered: the names a step of this run provides (``STEP_INPUTS`` that apply, and the
        model's ``AUX_OUTPUTS``); hints: {input name: what to do to get it}.
        """
        hints = hints or {}
        for name, term in self.terms.items():
            for need in term_needs(term):
                if need not in offered:
                    fix = hints.get(need, f'use a model that returns {need!r}, or drop {name}')
                    raise utility.UserError(f'loss term {name} needs {need!r}, which this run '
                                            f'does not provide; {fix}')

    def _scaled(self, x):
        return x if self.factor == 1 else x * self.factor

    def forward(self, sr, hr, age=None, **inputs):
        """Total loss (scalar tensor) for sr, hr [B, C, H, W] in [0, rgb_range].

        inputs: the step inputs the terms declare (``needs()``): ``age`` (training progress
        in epochs: iterations done, counting the current one, over iterations per epoch),
        ``lr``, ``sr_ema``, the model's auxiliary outputs; extra ones are ignored.  Images
        are rescaled to [0, loss_range] once here.  Records each weighted term and the total
        for ``last()`` and the epoch means (until ``discard_last()`` takes the batch out).
        """
        if age is not None:
            inputs['age'] = age
        sr, hr = self._scaled(sr), self._scaled(hr)
        cache = {}

        def take(name, need):
            if need not in inputs or inputs[need] is None:
                raise ValueError(f'loss term {name} needs the step input {need!r}: call '
                                 f'loss(sr, hr, {need}=...)')
            if need not in cache:
                value = inputs[need]
                cache[need] = value if need in self.raw else self._scaled(value)
            return cache[need]

        values = {}
        total = None
        for name, term in self.terms.items():
            extra = {need: take(name, need) for need in term_needs(term)}
            value = term(sr, hr, **extra)
            weighted = self.weights[name] * value
            total = weighted if total is None else total + weighted
            values[name] = weighted.detach()
        values[TOTAL] = total.detach()
        self._record(values)
        return total

    def _record(self, values):
        # The newest batch stays pending until the next one (or the end of the epoch), so
        # that discard_last() can drop it even when it is NaN.  Values stay tensors (float64
        # sums) so that a GPU run does not synchronise every batch.
        self._commit()
        self._last = self._pending = values

    def _commit(self):
        self._sums, self._count = self._with_pending()
        self._pending = None

    def _with_pending(self):
        """(sums, count) of the committed batches and the pending one, without changing them."""
        if self._pending is None:
            return self._sums, self._count
        sums = dict(self._sums)
        for key, value in self._pending.items():
            value = value.to(torch.float64)
            sums[key] = sums[key] + value if key in sums else value
        return sums, self._count + 1

    def discard_last(self):
        """Leave the last batch out of the epoch means (e.g. a skipped batch)."""
        self._pending = None

    def start_epoch(self):
        """Start a new epoch: zero the running sums behind ``means()``."""
        self._sums = {}
        self._count = 0
        self._pending = None

    def last(self):
        """The last batch's weighted terms and total: dict TYPE/'Total' -> float."""
        return {key: float(value) for key, value in self._last.items()}

    def means(self):
        """Means over the batches since ``start_epoch()`` (less discarded ones): dict
        TYPE/'Total' -> float; empty before the first batch."""
        sums, count = self._with_pending()
        return {key: float(value) / count for key, value in sums.items()}

    def end_epoch(self):
        """Close the epoch: append its means to ``history``, return them, zero the sums.

        An epoch without a kept batch (all skipped) gets NaN, so that the history stays one
        entry per epoch.
        """
        self._commit()
        means = self.means() or {key: math.nan for key in self._keys()}
        for key in self._keys():
            self.history[key].append(means[key])
        self.start_epoch()
        return means

    def display(self, values=None):
        """One line such as 'L1: 5.123  SPL: 0.4321  Total: 5.555'.

        values: dict from ``last()`` or ``means()``; default the epoch means so far.
        """
        values = self.means() if values is None else values
        return '  '.join(f'{key}: {values[key]:.4g}' for key in self._shown_keys()
                         if key in values)

    def log_state(self):
        """The epoch history as plain python (dict of lists of floats) for a checkpoint."""
        return {'history': {key: [float(v) for v in values]
                            for key, values in self.history.items()}}

    def load_log_state(self, state):
        """Restore ``log_state()`` output.  A term absent from the saved run (the --loss
        string changed) gets NaN for the saved epochs so that epochs stay aligned."""
        saved = state['history']
        epochs = max((len(values) for values in saved.values()), default=0)
        self.history = {key: [float(v) for v in saved.get(key, [math.nan] * epochs)]
                        for key in self._keys()}

    def set_lr(self, lr):
        """Give ``lr`` to the terms with an optimiser of their own (``OWN_OPTIMIZER = True``,
        e.g. a GAN's discriminator), which follow the generator's schedule."""
        for term in self.terms.values():
            if getattr(term, 'OWN_OPTIMIZER', False):
                term.set_lr(lr)

    def curves(self):
        """What to plot: [(name, title, {label: epoch means})], one per term and the total
        (when there are several terms); ``Experiment.plot_curves`` draws them."""
        out = []
        for key in self._shown_keys():
            if self.history[key]:
                label = self.describe() if key == TOTAL else f'{self.weights[key]:g} * {key}'
                out.append((f'loss_{key}', f'{key} loss', {label: self.history[key]}))
        return out
