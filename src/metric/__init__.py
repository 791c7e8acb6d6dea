"""Evaluation metrics: ``--metrics psnr+ssim+lpips+dists`` (any case).

Each metric is one file ``src/metric/<name>.py`` (files starting with ``_`` are helpers).
It defines ``make_metric(args)`` returning a callable ``(sr, hr, scale, benchmark) ->
float64 tensor [B]`` (sr, hr: [B, C, H, W] in [0, rgb_range]; sr is quantised to 8 bit
inside) and declares its traits:

* ``LOWER_IS_BETTER`` [False]: True for distances (LPIPS, DISTS);
* ``LOG_FORMAT`` ['.4f']: how the log prints its mean;
* ``LABEL`` [the name in upper case]: its name in the log;
* ``RGB_ONLY`` [False]: refused with ``--n_colors 1``;
* ``NO_REFERENCE`` [False]: True when only sr is scored (NIQE, MUSIQ, CLIP-IQA);
* ``PER_SET`` [False]: True for a metric of a whole set (FID): its object has
  ``reset()``, ``add(sr, hr, scale, benchmark)`` for every image and ``result() -> (value,
  note)`` once the set is done (``note``: a line for the log, or '').  Its value appears in
  the log line and metrics.json of the set, not in the per-image metrics.csv.

Metrics that hold a network are built once per process and device (``build``), in eval
mode; they read their weights from local files only (see ``_weights``).
"""
import torch

import registry
import utility


def available():
    """Lower-case names of the metric files in src/metric/."""
    return registry.names('metric', 'make_metric')


def parse_names(text):
    """'PSNR+ssim+lpips' -> ['psnr', 'ssim', 'lpips'] (repeats dropped); UserError for an
    empty entry or an unknown name, listing the valid ones."""
    names = []
    for item in str(text).split('+'):
        name = item.strip().lower()
        if not name:
            raise utility.UserError(f'--metrics {text!r} has an empty entry; join names with '
                                    f'"+", e.g. psnr+ssim+lpips')
        if name not in available():
            raise utility.UserError(f'unknown metric {item.strip()!r} in --metrics; valid (any '
                                    f'case, joined by "+"): {", ".join(available())}')
        if name not in names:
            names.append(name)
    return names


def get_module(name):
    return registry.load('metric', name, 'make_metric', '--metrics')


def lower_is_better(name):
    return bool(getattr(get_module(name), 'LOWER_IS_BETTER', False))


def label(name):
    return getattr(get_module(name), 'LABEL', name.upper())


def log_format(name):
    return getattr(get_module(name), 'LOG_FORMAT', '.4f')


def per_set(name):
    return bool(getattr(get_module(name), 'PER_SET', False))


def direction(name):
    return 'lower is better' if lower_is_better(name) else 'higher is better'


_BUILT = {}


def build(args, device):
    """{name: metric} for ``args.metrics``, on ``device``, each built once per process.

    The cache key holds everything a metric is built from, so a second call (every
    validation) reuses the networks.  UserError when a weight file is missing or wrong.
    """
    device = torch.device(device)
    hub = torch.hub.get_dir()
    out = {}
    for name in args.metrics:
        key = (name, str(device), args.rgb_range, args.n_colors, args.metric_weights, hub,
               getattr(args, 'crop_border', 'edsr'), getattr(args, 'y_channel', 'rounded'))
        if key not in _BUILT:
            metric = get_module(name).make_metric(args)
            if isinstance(metric, torch.nn.Module):
                metric = metric.to(device).eval()
            _BUILT[key] = metric
        out[name] = _BUILT[key]
    return out


def weight_files(metrics):
    """'LPIPS: /a/alexnet-owt-7be5be79.pth, /b/alex.pth; ...' for the log ('' without networks)."""
    parts = []
    for metric in metrics.values():
        files = [getattr(metric, a) for a in ('backbone_file', 'head_file') if hasattr(metric, a)]
        if files:
            parts.append(f'{metric.label}: ' + ', '.join(str(f) for f in files))
    return '; '.join(parts)


def score(metrics, sr, hr, scale, benchmark):
    """{name: float} for one image (the mean over a batch), per-image metrics only; the
    per-set ones (FID) are handed the image with ``add``."""
    out = {}
    for name, metric in metrics.items():
        if per_set(name):
            metric.add(sr, hr, scale, benchmark)
        else:
            out[name] = float(metric(sr, hr, scale, benchmark).mean())
    return out
