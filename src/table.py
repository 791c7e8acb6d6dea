"""The paper's table from runs' metrics.json: datasets x metrics, one row per run.

    python src/table.py RUN_A RUN_B ... [--format md|latex|csv] [--datasets Set5+Set14]
        [--metrics psnr+ssim+lpips] [--scale 4] [--labels A,B,...]

A RUN is a run name in experiment/, a run folder, or a metrics.json file.  Columns are
(dataset, scale, metric) in the order of the runs' files (or of --datasets / --metrics),
headed with an arrow: up when higher is better, down when lower is better (each metric file's
``LOWER_IS_BETTER``; an unknown name is taken as higher-is-better and marked with '?'), and
the best value of each column is marked: bold in Markdown and LaTeX, a last "best" row
naming the run(s) in CSV.  Values are printed with each metric's log format; '-' where a run
lacks a value (or it is null: a diverged model).

Runs measured differently are refused, naming the difference: every entry of metrics.json
that is not a score (the "protocol" written by the evaluation, and any other record such as
the LR sets' identities under "_lr_sets", at the top level or inside a dataset) must be equal
across the runs; an entry that some runs have and others lack counts as a difference.  An
entry that names a dataset is compared among the runs that scored that dataset.
"""
import argparse
import csv
import io
import json
import math
import os
import re
import sys
from pathlib import Path

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import utility  # noqa: E402

_SCALE = re.compile(r'^x\d+$')
_ABSENT = '(not recorded)'


def build_parser():
    import option
    p = option._Parser(prog='table.py', formatter_class=option._HelpFormatter,
                       description='A table of several runs\' metrics.json (see module docstring).')
    p.add_argument('runs', nargs='+', help='run names in experiment/, run folders or '
                                           'metrics.json files')
    p.add_argument('--format', default='md', choices=('md', 'latex', 'csv'),
                   help='Markdown, LaTeX (booktabs) or CSV')
    p.add_argument('--datasets', default='', help='datasets to show, joined by "+" (default: all)')
    p.add_argument('--metrics', default='', help='metrics to show, joined by "+" (default: all)')
    p.add_argument('--scale', default='', help='scales to show, joined by "+" (default: all)')
    p.add_argument('--labels', default='', help='row names joined by ",", one per run (default: '
                                                'the run folder names)')
    return p


def locate(run):
    """Path of a run's metrics.json: a file, a folder, or a name in experiment/."""
    path = Path(run).expanduser()
    if path.is_file():
        return path
    for folder in (path, utility.EXPERIMENT_ROOT / run):
        if (folder / 'metrics.json').is_file():
            return folder / 'metrics.json'
        if folder.is_dir():
            raise utility.UserError(f'run {run}: {folder} has no metrics.json; evaluate it first '
                                    f'(a test-only run or a training run writes one)')
    raise utility.UserError(f'run {run}: no such file or folder, and no run of that name in '
                            f'{utility.EXPERIMENT_ROOT}; give a run name, folder or metrics.json')


def read(path):
    """(scores {dataset: {'x4': {metric: value or None}}}, records {name: value}) of one
    metrics.json; records are every entry that is not a score ('protocol.y_channel', ...)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise utility.UserError(f'{path} cannot be read as JSON ({type(e).__name__}); give the '
                                f'metrics.json an evaluation wrote') from None
    if not isinstance(data, dict):
        raise utility.UserError(f'{path} is not a metrics.json (not an object of datasets)')
    scores, records = {}, {}

    def record(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                record(f'{prefix}.{k}', v)
        else:
            records[prefix] = value

    for name, entry in data.items():
        if isinstance(entry, dict) and any(_SCALE.match(str(k)) for k in entry):
            for key, value in entry.items():
                if _SCALE.match(str(key)) and isinstance(value, dict):
                    scores.setdefault(name, {})[key] = value
                else:
                    record(f'{name}.{key}', value)
        else:
            record(name, entry)
    return scores, records


def check_same_protocol(runs):
    """UserError naming every record that differs between runs ([(label, scores, records)]).

    A record under a dataset's name (``Set5.lr_set``, ``_lr_sets.Set5.x4.seed``) is compared
    among the runs that scored that dataset only; the others among all runs."""
    datasets = {name for _, scores, _ in runs for name in scores}
    keys = []
    for _, _, records in runs:
        keys += [k for k in records if k not in keys]
    diffs = []
    for key in keys:
        named = [part for part in key.split('.') if part in datasets]
        members = [r for r in runs if not named or named[0] in r[1]]
        values = [records.get(key, _ABSENT) for _, _, records in members]
        if any(v != values[0] for v in values[1:]):
            diffs.append(f'{key} ' + ', '.join(f'{_show(v)} in {label}'
                                               for (label, _, _), v in zip(members, values)))
    if diffs:
        raise utility.UserError(
            'the runs were measured differently: ' + '; '.join(diffs) + '; tabulate runs '
            'evaluated with the same --protocol and switches (re-evaluate one with --test_only)')


def _show(value):
    return value if value == _ABSENT else json.dumps(value)


def _split(text):
    return [t.strip() for t in text.split('+') if t.strip()] if text else []


def columns(runs_scores, datasets, metrics, scales):
    """[(dataset, 'x4', metric)] present in any run, in first-seen or requested order."""
    found = []
    for scores in runs_scores:
        for name, per_scale in scores.items():
            for scale, values in per_scale.items():
                for key in values:
                    if (name, scale, key) not in found:
                        found.append((name, scale, key))

    def order(values, wanted, index):
        if not wanted:
            return values
        missing = [w for w in wanted if w not in {v[index] for v in values}]
        if missing:
            raise utility.UserError(f'no run has {missing[0]!r} among its '
                                    f'{("datasets", "scales", "metrics")[index]}; available: '
                                    f'{", ".join(dict.fromkeys(v[index] for v in values))}')
        return sorted((v for v in values if v[index] in wanted),
                      key=lambda v: wanted.index(v[index]))

    found = order(found, [f'x{s}' for s in scales], 1)
    found = order(found, [m.lower() for m in metrics], 2)
    found = order(found, datasets, 0)
    # Keep each dataset's columns together (datasets in their first order).
    names = list(dict.fromkeys(c[0] for c in found))
    return sorted(found, key=lambda c: names.index(c[0]))


def _traits(key):
    """(lower_is_better or None if unknown, format)."""
    import metric
    if key in metric.available():
        return metric.lower_is_better(key), metric.log_format(key)
    return None, '.4f'


def build_table(labels, runs_scores, cols):
    """(header cells, rows of cells, best [set of row indices per column]); cells are
    (text, value) with value None where missing."""
    import metric
    header, rows, best = [], [[] for _ in labels], []
    for name, scale, key in cols:
        lower, fmt = _traits(key)
        label = metric.label(key) if lower is not None else key.upper()
        header.append((name, scale, label, lower))
        values = []
        for r, scores in enumerate(runs_scores):
            v = scores.get(name, {}).get(scale, {}).get(key)
            v = float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
            values.append(v)
            rows[r].append((f'{v:{fmt}}' if v is not None else '-', v))
        # The best as printed: values that print alike are marked alike.
        shown = [float(f'{v:{fmt}}') if v is not None else None for v in values]
        known = [v for v in shown if v is not None]
        if known:
            target = min(known) if lower else max(known)
            best.append({i for i, v in enumerate(shown) if v == target})
        else:
            best.append(set())
    return header, rows, best


def _arrow(lower, style):
    if lower is None:
        return '?'
    if style == 'latex':
        return r'$\downarrow$' if lower else r'$\uparrow$'
    return '↓' if lower else '↑'


def render(labels, header, rows, best, fmt):
    multi_scale = len({h[1] for h in header}) > 1
    titles = [f'{h[0]}{" " + h[1] if multi_scale else ""} {h[2]}{_arrow(h[3], fmt)}'
              for h in header]
    if fmt == 'csv':
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator='\n')
        w.writerow(['run'] + [f'{h[0]} {h[1]} {h[2]}'.strip() for h in header])
        for label, cells in zip(labels, rows):
            w.writerow([label] + [c[0] for c in cells])
        w.writerow(['best'] + ['; '.join(labels[i] for i in sorted(b)) for b in best])
        return buf.getvalue()
    if fmt == 'md':
        lines = ['| run | ' + ' | '.join(titles) + ' |',
                 '|---|' + '---:|' * len(titles)]
        for r, (label, cells) in enumerate(zip(labels, rows)):
            shown = [f'**{c[0]}**' if r in best[j] else c[0] for j, c in enumerate(cells)]
            lines.append(f'| {label} | ' + ' | '.join(shown) + ' |')
        return '\n'.join(lines) + '\n'
    # LaTeX (booktabs): a row of dataset names over their metric columns.
    def tex(text):
        return re.sub(r'([_%&#$])', r'\\\1', str(text))
    groups = []
    for h in header:
        name = f'{h[0]} {h[1]}' if multi_scale else h[0]
        if groups and groups[-1][0] == name:
            groups[-1][1] += 1
        else:
            groups.append([name, 1])
    lines = [r'\begin{tabular}{l' + 'c' * len(header) + '}', r'\toprule',
             'Method & ' + ' & '.join(rf'\multicolumn{{{n}}}{{c}}{{{tex(g)}}}' for g, n in groups)
             + r' \\']
    start, rules = 2, []
    for _, n in groups:
        rules.append(rf'\cmidrule(lr){{{start}-{start + n - 1}}}')
        start += n
    lines.append(' '.join(rules))
    lines.append(' & ' + ' & '.join(f'{tex(h[2])}{_arrow(h[3], "latex")}' for h in header)
                 + r' \\')
    lines.append(r'\midrule')
    for r, (label, cells) in enumerate(zip(labels, rows)):
        shown = [rf'\textbf{{{c[0]}}}' if r in best[j] else c[0] for j, c in enumerate(cells)]
        lines.append(f'{tex(label)} & ' + ' & '.join(shown) + r' \\')
    lines += [r'\bottomrule', r'\end{tabular}']
    return '\n'.join(lines) + '\n'


def run(argv=None):
    opts = build_parser().parse_args(argv)
    paths = [locate(r) for r in opts.runs]
    labels = [s.strip() for s in opts.labels.split(',')] if opts.labels else \
        [p.parent.name if p.name == 'metrics.json' else p.stem for p in paths]
    if len(labels) != len(paths):
        raise utility.UserError(f'--labels has {len(labels)} names for {len(paths)} runs; give '
                                f'one per run, joined by ","')
    loaded = [read(p) for p in paths]
    check_same_protocol([(label, scores, records)
                         for label, (scores, records) in zip(labels, loaded)])
    scores = [s for s, _ in loaded]
    if not any(scores):
        raise utility.UserError('the runs\' metrics.json hold no scores; evaluate them first')
    scales = _split(opts.scale)
    if any(not s.isdigit() for s in scales):
        raise utility.UserError(f'--scale {opts.scale!r} must be integers joined by "+", e.g. 4')
    cols = columns(scores, _split(opts.datasets), _split(opts.metrics), scales)
    header, rows, best = build_table(labels, scores, cols)
    sys.stdout.write(render(labels, header, rows, best, opts.format))
    return 0


def main(argv=None):
    return utility.run_cli(run, 'table.py', argv)


if __name__ == '__main__':
    sys.exit(main())
