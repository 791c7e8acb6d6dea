"""Degradations: how LR images are made from HR images, one file per preset.

``--degradation NAME`` picks ``src/degradation/<name>.py``; adding a degradation is adding a
file that declares its parameters (``PARAMS``), its ``SOURCE`` and
``make_degradation(scale)``, which returns None (the LR comes from the dataset, as for
``bicubic``) or a callable ``(hr [B, C, H, W] in [0, 1], batch_key, sample_keys) ->
(lr [B, C, H/s, W/s] in [0, 1], params)`` drawing every random value from the keys.
Files whose name starts with '_' are shared helpers.

Keys (see ``_second_order``): test sets use ``test_keys(seed, scale, image name)``; training
uses ``train_keys`` (seed, epoch, position in the epoch's sample stream), so a resumed run
draws what the uninterrupted run drew and DDP ranks draw for disjoint positions.
"""
import hashlib

import registry

DEFAULT = 'bicubic'
_TEST, _TRAIN_BATCH, _TRAIN_SAMPLE, _POOL = 10, 11, 12, 13     # key domains


def names():
    """Preset names: the files of src/degradation/ defining ``make_degradation``."""
    return registry.names('degradation', 'make_degradation')


def load(name):
    """The preset module ``name`` (any case); UserError listing the presets when unknown."""
    return registry.load('degradation', name, 'make_degradation', '--degradation')


def make(name, scale):
    """The preset's degradation for ``scale`` (None for dataset-provided LR: bicubic)."""
    return load(name).make_degradation(scale)


def name_hash(name):
    """A 32-bit integer naming an image stem, so keys do not depend on the image order."""
    return int(hashlib.sha1(name.encode('utf-8')).hexdigest()[:8], 16)


def for_tests(args):
    """The degradation whose LR_<name> folders the test sets read: --test_degradation, or
    --degradation when that is not given."""
    return getattr(args, 'test_degradation', '') or getattr(args, 'degradation', DEFAULT)


def test_keys(seed, scale, image_name, variant=0):
    """(batch_key, [sample_key]) of one test image (variant > 0: preview alternatives)."""
    key = (_TEST, seed, scale, name_hash(image_name), variant)
    return key, [key]


def train_keys(seed, epoch, batch, rank, positions):
    """(batch_key, sample_keys) of training batch ``batch`` of ``epoch`` on ``rank``.

    ``positions``: the global stream positions of the batch's samples (disjoint across
    ranks); the per-batch draws include the rank, so each rank draws its own.
    """
    return ((_TRAIN_BATCH, seed, epoch, batch, rank),
            [(_TRAIN_SAMPLE, seed, epoch, int(k)) for k in positions])
