"""Which LR images an evaluation used (its "LR set"), decided in one place.

Two evaluations of the same test set at the same scale are comparable only when they read
the same LR images.  Bicubic LR is a function of the HR images (the project makes it with
MATLAB's imresize, or reads EDSR-PyTorch's LR_bicubic/ files).  A degraded set is written by
``src/degrade.py`` into ``<dir_data>/benchmark/<Name>/LR_<degradation>/X<s>/`` with a
``manifest.json`` (degradation, seed, preset, project version, every image's drawn
parameters and file digest); the same folder name holds another set after it is made again
with other settings, so the folder name alone does not say which images were read.

``identity(folder, degradation, scale)`` gives the record of one test set and scale::

    {'degradation': 'realesrgan', 'lr_seed': 5, 'lr_manifest': '3f9c0a1b2d4e'}
    {'degradation': 'bicubic', 'lr_seed': None, 'lr_manifest': None}

``lr_manifest`` is the first 12 hex digits of the SHA-256 of the manifest's content without
its ``command`` entry (which holds the --dir_data as typed, not what was made), so the same
set made from two paths has one digest.  An evaluation prints it at the end of its score line
(degraded sets only; a line without it is bicubic), and writes it in metrics.json (under
``"_lr_sets"``) and metrics.csv (columns ``FIELDS``).  Tools that put runs side by side
(compare.py, tables) read it with ``from_csv_row`` / ``from_metrics_json`` and call
``refuse_mixed``.
"""
import hashlib
import json
from pathlib import Path

import utility

FIELDS = ('degradation', 'lr_seed', 'lr_manifest')
BICUBIC = {'degradation': 'bicubic', 'lr_seed': None, 'lr_manifest': None}
MANIFEST = 'manifest.json'
# metrics.json key holding {dataset: {'x<s>': identity}}; no dataset name starts with '_'.
JSON_KEY = '_lr_sets'


def manifest_digest(manifest):
    """12 hex digits naming a degrade.py manifest (a dict) by its content, ``command`` left out."""
    content = {k: v for k, v in manifest.items() if k != 'command'}
    text = json.dumps(content, sort_keys=True, separators=(',', ':'), ensure_ascii=True)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]


def read_manifest(lr_dir):
    """The manifest dict of a degraded LR folder, or None when it has none; UserError when
    it cannot be read."""
    path = Path(lr_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as e:
        raise utility.UserError(f'{path} cannot be read ({e}); make the set again with '
                                f'src/degrade.py') from None
    if not isinstance(manifest, dict):
        raise utility.UserError(f'{path} is not a degrade.py manifest (a JSON object); make the '
                                f'set again with src/degrade.py')
    return manifest


def identity(folder, degradation, scale):
    """The LR set of benchmark ``folder`` (``<dir_data>/benchmark/<Name>``) at ``scale`` under
    ``--degradation degradation``: a dict with the keys of ``FIELDS`` (see the module
    docstring).  A degraded folder without a manifest (LR images made by hand) has seed and
    digest None."""
    degradation = str(degradation).lower()
    if degradation == 'bicubic':
        return dict(BICUBIC)
    manifest = read_manifest(Path(folder) / f'LR_{degradation}' / f'X{scale}')
    if manifest is None:
        return {'degradation': degradation, 'lr_seed': None, 'lr_manifest': None}
    seed = manifest.get('seed')
    return {'degradation': degradation, 'lr_seed': seed if isinstance(seed, int) else None,
            'lr_manifest': manifest_digest(manifest)}


def describe(ident):
    """'bicubic', 'realesrgan seed 5, manifest 3f9c0a1b2d4e', 'realesrgan (no manifest)', or
    'not recorded' (None: results written before LR sets were recorded)."""
    if ident is None:
        return 'LR set not recorded'
    if ident['degradation'] == 'bicubic':
        return 'bicubic'
    if ident['lr_manifest'] is None:
        return f'{ident["degradation"]} (no {MANIFEST})'
    return f'{ident["degradation"]} seed {ident["lr_seed"]}, manifest {ident["lr_manifest"]}'


def score_suffix(ident):
    """What an evaluation's score line ends with: '' for bicubic, else '  (LR: ...)'."""
    if ident is None or ident['degradation'] == 'bicubic':
        return ''
    return f'  (LR: {describe(ident)})'


def csv_values(ident):
    """The metrics.csv cells of ``FIELDS`` ('' for None)."""
    return ['' if ident[k] is None else str(ident[k]) for k in FIELDS]


def from_csv_row(row):
    """The identity recorded in a metrics.csv row (a csv.DictReader dict), or None for a row
    written before LR sets were recorded."""
    if any(k not in row for k in FIELDS):
        return None
    seed = row['lr_seed']
    return {'degradation': row['degradation'],
            'lr_seed': int(seed) if seed.lstrip('-').isdigit() else None,
            'lr_manifest': row['lr_manifest'] or None}


def from_metrics_json(summary, dataset, scale):
    """The identity recorded in a run's metrics.json (the parsed dict) for ``dataset`` at
    ``scale``, or None when not recorded."""
    ident = summary.get(JSON_KEY, {}).get(dataset, {}).get(f'x{scale}')
    return dict(ident) if isinstance(ident, dict) else None


def refuse_mixed(labelled, what):
    """UserError when the identities in ``labelled`` ([(run label, identity or None)]) are not
    all equal: results on different LR images must not be compared.  ``what`` names the
    test set and scale in the message, e.g. 'Set5 x4'."""
    if not labelled:
        return
    first_label, first = labelled[0]
    for label, ident in labelled[1:]:
        if ident != first:
            raise utility.UserError(
                f'runs {first_label} and {label} were evaluated on different LR images of '
                f'{what} ({describe(first)} vs {describe(ident)}); compare runs evaluated on one '
                f'set: evaluate them again on the same LR folder')
