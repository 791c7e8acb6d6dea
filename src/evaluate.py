"""Evaluation on the test sets, as the SR literature computes it: one function that
test-only runs and validation during training share.

``evaluate`` runs every ``--data_test`` set at every ``--scale``, scores each image with
``score_image`` (the ``--metrics`` of the 8-bit output, see ``metric``), writes the SR images with
``--save_results``, and reports each set's means as soon as they are known.  A metric of the
whole set (FID, ``PER_SET``) is handed every image and reports one value per set and scale,
placed among the means in ``--metrics`` order; its note (e.g. the rank-deficient covariance)
is logged on a line of its own.  A set of several LR versions per HR (``version_groups``, see
``data/_benchmark.py``) is averaged over all its versions and also per group (summary key
``<set>/<group>``; per-image metrics only: a set metric such as FID is given for the whole
set).
"""
import contextlib

import numpy as np
import torch
from tqdm import tqdm

import imageops
import lr_set as lr_set_pkg
import metric as metric_pkg
import utility


def score_image(sr, hr, scale, args, benchmark, what):
    """{metric name: value} of one test image, for every ``--metrics`` in its order.

    sr, hr: [1, C, H, W] in [0, rgb_range] (sr already quantised); ``what`` names the image
    in errors.  Network metrics (LPIPS, DISTS) are built on sr's device on first use and
    reused.  An image too small to measure is a user error.
    """
    try:
        return metric_pkg.score(metric_pkg.build(args, sr.device), sr, hr, scale, benchmark)
    except ValueError as e:
        if sr.shape != hr.shape:    # not the image's fault
            raise
        raise utility.UserError(f'{what} at x{scale}: {e}; remove the image from the test '
                                f'set') from None


def protocol_fields(args):
    """{switch: value} of the evaluation protocol (``--protocol`` and its switches), written
    to metrics.json as "protocol" so that runs measured differently are not tabulated
    together (``src/table.py``)."""
    fields = {'protocol': args.protocol, 'y_channel': args.y_channel,
              'crop_border': args.crop_border, 'hr_modcrop': args.hr_modcrop,
              'div2k_benchmark': bool(args.div2k_benchmark),
              'degradation': getattr(args, 'degradation', 'bicubic')}
    if any(n.lower() == 'div2k' for n in args.data_test):
        fields['data_range'] = args.data_range
    return fields


def describe_protocol(args):
    """The protocol in words for log.txt, e.g. 'edsr (Y rounded; border: scale on benchmarks,
    scale + 6 elsewhere; LR from HR cropped to a multiple of the scale; DIV2K on RGB)'."""
    border = {'edsr': 'scale on benchmarks, scale + 6 elsewhere',
              'scale': 'scale on every set'}.get(args.crop_border, f'{args.crop_border} pixels')
    mod = f'{args.hr_modcrop}' if args.hr_modcrop else 'the scale'
    div2k = 'as a benchmark (Y)' if args.div2k_benchmark else 'on RGB'
    return (f'{args.protocol} (Y {args.y_channel}; border: {border}; LR from HR cropped to a '
            f'multiple of {mod}; DIV2K {div2k})')


def format_scores(name, scale, means, lr_set=None):
    """The log line of one set and scale, e.g. '[Set5 x4]  PSNR: 28.42  SSIM: 0.8104  LPIPS:
    0.3412' (each metric with its own digits); a degraded LR set (``lr_set``, see
    ``lr_set.identity``) is named at the end: '  (LR: realesrgan seed 5, manifest 3f9c0a1b2d4e)'."""
    return f'[{name} x{scale}]  ' + '  '.join(
        f'{metric_pkg.label(key)}: {value:{metric_pkg.log_format(key)}}'
        for key, value in means.items()) + lr_set_pkg.score_suffix(lr_set)


@torch.no_grad()
def evaluate(model, loaders, args, device, autocast=contextlib.nullcontext, exp=None,
             report=None):
    """Score ``model`` (the ``model.Model`` wrapper, put in eval mode here) on ``loaders``.

    Args:
        loaders: the test DataLoaders of ``data.Data`` (``loader.dataset`` has ``.name``,
            ``.benchmark``, ``.set_scale``).
        autocast: a callable returning the context to run the network in (mixed precision).
        exp: the run's ``Experiment``, to save images (``--save_results``) and log; None
            writes nothing.
        report: called as ``report(name, scale, means, lr_set)`` when a set and scale is
            done, ``lr_set`` the LR images' identity (``lr_set.identity``) (default: log
            ``format_scores``).
    Returns:
        (summary, rows): summary ``{dataset: {'x2': {metric: mean}}}`` for sets with ground
        truth; rows ``[{'dataset', 'scale', 'image', 'lr_set', metric: value, ...}]`` per
        image, ``lr_set`` as given to ``report``.
    """
    log = exp.log if exp is not None else print
    if report is None:
        def report(name, scale, means, lr_set):
            log(format_scores(name, scale, means, lr_set))
    model.eval()
    summary, rows = {}, []
    for loader in loaders:
        dataset = loader.dataset
        name = dataset.name
        for idx_scale, scale in enumerate(args.scale):
            dataset.set_scale(idx_scale)
            # Read at each evaluation: it names the images read now, not when the run began.
            lr_set = dataset.lr_set(idx_scale) if hasattr(dataset, 'lr_set') else None
            scores = []
            set_metrics = {n: m for n, m in metric_pkg.build(args, device).items()
                           if metric_pkg.per_set(n)}
            for metric in set_metrics.values():
                metric.reset()
            # disable=None: a bar on a terminal only, not in redirected logs.
            bar = tqdm(loader, ncols=100, leave=False, disable=None, desc=f'{name} x{scale}')
            for lr_img, hr_img, names in bar:
                lr_img = lr_img.to(device, non_blocking=True)
                hr_img = hr_img.to(device, non_blocking=True)
                with autocast():
                    sr = model(lr_img, idx_scale)
                sr = imageops.quantize(sr.float(), args.rgb_range)
                filename = names[0] if isinstance(names, (list, tuple)) else str(names)
                if hr_img.numel():
                    values = score_image(sr, hr_img, scale, args, dataset.benchmark,
                                         f'{name}/{filename}')
                    scores.append(values)
                    rows.append({'dataset': name, 'scale': scale, 'image': filename,
                                 'lr_set': lr_set, **values})
                if args.save_results and exp is not None:
                    exp.save_image(name, f'{filename}_x{scale}_SR', sr[0], args.rgb_range)
                    if args.save_gt:
                        exp.save_image(name, f'{filename}_x{scale}_LR', lr_img[0], args.rgb_range)
                        if hr_img.numel():
                            exp.save_image(name, f'{filename}_x{scale}_HR', hr_img[0],
                                           args.rgb_range)
            bar.close()
            if not scores:
                where = f' to {exp.path(f"results-{name}")}' if exp is not None else ''
                done = (f'wrote SR images{where}' if args.save_results
                        else 'nothing measured (add --save_results)')
                log(f'[{name} x{scale}]  no ground truth: {done}')
                continue
            per_image = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
            notes = {}
            for key, metric in set_metrics.items():
                per_image[key], notes[key] = metric.result()
            means = {key: per_image[key] for key in args.metrics}
            for key, note in notes.items():
                if note:
                    log(f'[{name} x{scale}]  {metric_pkg.label(key)} {note}')
            summary.setdefault(name, {})[f'x{scale}'] = means
            report(name, scale, means, lr_set)
            groups = getattr(dataset, 'version_groups', None)
            if groups:
                # multi-version sets: the means over all versions above, then per group
                # ('<set>/<group>' in the summary; not a test set of its own for 'best')
                measured = [r for r in rows if r['dataset'] == name and r['scale'] == scale]
                for g in sorted(set(groups.values())):
                    part = [s for s, r in zip(scores, measured) if groups.get(r['image']) == g]
                    gm = {key: float(np.mean([s[key] for s in part])) for key in scores[0]}
                    summary.setdefault(f'{name}/{g}', {})[f'x{scale}'] = gm
                    log(format_scores(f'{name}/{g} ({len(part)} of {len(scores)})', scale, gm,
                                      lr_set))
    return summary, rows


class MetricHistory:
    """The test scores of a training run, per evaluation: ``epochs`` (when each evaluation
    ran) and ``scores`` ({dataset: {"x2": {metric: [value per evaluation]}}}), both saved in
    the checkpoint; ``plot`` draws them."""

    def __init__(self, epochs=(), scores=None):
        self.epochs = list(epochs)
        self.scores = scores if scores is not None else {}

    def start(self, epoch):
        """An evaluation after ``epoch`` begins."""
        self.epochs.append(epoch)

    def add(self, name, scale, means):
        """Record one set's means ({metric: value}) at ``scale``."""
        hist = self.scores.setdefault(name, {}).setdefault(f'x{scale}', {key: [] for key in means})
        for key, value in means.items():
            hist.setdefault(key, []).append(value)

    def plot(self, exp, metrics):
        """test_<Dataset>_<metric>.png/pdf: one plot per test set and metric, a line per scale."""
        for name, per_scale in self.scores.items():
            for key in metrics:
                series = {f'{name} {scale}': values.get(key, [])
                          for scale, values in per_scale.items()}
                # A metric added on resume has values for the last evaluations only.
                n = max(len(v) for v in series.values())
                if not n:
                    continue
                label = metric_pkg.label(key)
                exp.plot_curves(f'test_{name}_{key}', f'{label} on {name}',
                                f'{label} ({metric_pkg.direction(key)})',
                                {k: v for k, v in series.items() if len(v) == n},
                                epochs=self.epochs[len(self.epochs) - n:])


@torch.no_grad()
def first_test_image(model, loaders, prepare, weights, autocast, rgb_range):
    """(lr, hr, sr, name) of the first test set's first image at the first scale:
    [1, C, h, w], [1, C, H, W] (empty without ground truth), SR quantised to 8 bit.
    ``prepare`` moves tensors to the device, ``weights()`` is the context of the evaluated
    weights (the EMA average with --ema_decay), ``autocast()`` that of --precision."""
    dataset = loaders[0].dataset
    dataset.set_scale(0)
    lr_img, hr_img, name = dataset[0]
    lr_img, hr_img = prepare(lr_img[None], hr_img[None])
    model.eval()
    with weights():
        with autocast():
            sr = model(lr_img, 0)
    sr = imageops.quantize(sr.float(), rgb_range)
    return lr_img, hr_img, sr, f'{dataset.name}/{name}'
