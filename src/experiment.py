"""The run folder ``experiment/<name>``: logs, config, metrics files, plots and checkpoints.

Only rank 0 writes (``Experiment(..., writer=False)`` on the other ranks turns every
write into a no-op).  Checkpoints go through a temporary file and ``os.replace``, so a
crash leaves the previous checkpoint intact.
"""
import csv
import datetime
import io
import json
import shutil
import sys
from pathlib import Path


import imageops
import utility

CHECKPOINT = 'checkpoint.pt'


def load_checkpoint(path):
    """The dict in a run's checkpoint.pt (weights-only, on the CPU); UserError when unusable."""
    return utility.load_pt(path, missing='check the run name, or start a new run with --save '
                                         'instead of --load')


def write_curves(directory, name, title, ylabel, series, epochs=None):
    """Draw ``series`` ({label: [value per epoch]}) against ``epochs`` (default 1, 2, ...)
    into ``directory/<name>.png`` and ``.pdf``, atomically.  Returns the paths written (none
    when every series is empty)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    series = {label: list(values) for label, values in series.items() if len(values)}
    if not series:
        return []
    figure = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(figure)  # Agg, without pyplot's global state
    axes = figure.add_subplot()
    for label, values in series.items():
        xs = list(epochs) if epochs is not None else list(range(1, len(values) + 1))
        axes.plot(xs, values, marker='o' if len(values) < 30 else None, label=label)
    axes.set_title(title)
    axes.set_xlabel('Epoch')
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(ylabel)
    axes.grid(True)
    axes.legend()
    written = []
    for ext, metadata in (('png', None), ('pdf', {'CreationDate': None})):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=ext, metadata=metadata)
        path = Path(directory) / f'{name}.{ext}'
        utility.atomic_write_bytes(path, buffer.getvalue())
        written.append(path)
    return written


def _unique_archive_name(path):
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    candidate = path.with_name(f'{path.name}_archived_{stamp}')
    n = 1
    while candidate.exists():
        candidate = path.with_name(f'{path.name}_archived_{stamp}_{n}')
        n += 1
    return candidate


class Experiment:
    """Owns ``experiment/<name>`` for one run.

    ``resume`` is True when the run continues from ``checkpoint.pt`` (``--load``).
    """

    def __init__(self, args, writer=True, root=None):
        self.args = args
        self.writer = writer
        self.root = Path(root) if root is not None else utility.EXPERIMENT_ROOT
        self.resume = bool(args.load)
        if args.load and args.reset:
            raise utility.UserError(f'--load {args.load} resumes that run and --reset archives it; '
                                    f'give only one of them')
        if args.load and args.test_only:
            raise utility.UserError(
                f'--test_only evaluates --pre_train weights, it does not resume: use '
                f'--pre_train {self.root / args.load / "model" / "model_best.pt"} with another '
                f'--save name instead of --load {args.load}')
        name = args.load if self.resume else args.save
        self.dir = (self.root / name).resolve()
        if self.root.resolve() not in self.dir.parents:
            raise utility.UserError(f'run folder {self.dir} is outside {self.root}; use a plain '
                                    f'run name with --save/--load')
        self._log_file = None
        if self.resume:
            if not (self.dir / CHECKPOINT).is_file():
                raise utility.UserError(
                    f'cannot resume: {self.dir / CHECKPOINT} does not exist; start the run with '
                    f'--save {args.load} first, or check the name given to --load')
        elif args.reset:
            if writer and self.dir.exists():
                archive = _unique_archive_name(self.dir)
                shutil.move(str(self.dir), str(archive))
                print(f'--reset: moved the previous run to {archive}')
        elif (self.dir / CHECKPOINT).exists():
            # A test-only run would overwrite the training run's metrics files.
            raise utility.UserError(
                f'{self.dir} already holds a training run; ' + (
                    'choose another --save name for this evaluation' if args.test_only else
                    f'resume it with --load {name}, archive it with --reset, or choose another '
                    f'--save name'))
        if writer:
            (self.dir / 'model').mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.dir / 'log.txt', 'a', encoding='utf-8')
            self._write_config()

    def path(self, *parts):
        return self.dir.joinpath(*parts)

    # ------------------------------------------------------------------ text logs
    def _write_config(self):
        now = datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')
        lines = [now, 'command: ' + ' '.join([sys.executable, sys.argv[0]] + list(self.args.argv)), '']
        lines += [f'{k}: {v}' for k, v in sorted(self.args.as_dict().items())]
        with open(self.dir / 'config.txt', 'a', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n\n')

    def log(self, text, echo=True):
        """Print ``text`` (rank 0) and append it to log.txt."""
        if not self.writer:
            return
        if echo:
            print(text, flush=True)
        self._log_file.write(text + '\n')
        self._log_file.flush()

    def close(self):
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # ------------------------------------------------------------------ metrics
    def write_metrics(self, summary, rows, names=('psnr', 'ssim')):
        """metrics.json ({dataset: {"x2": {name: mean}}}, 6 decimals) and metrics.csv (one row
        per image: dataset, scale, image, then one column per metric of ``names``, 6 decimals)."""
        if not self.writer:
            return
        rounded = {name: {scale: {key: round(value, 6) for key, value in means.items()}
                          for scale, means in per_scale.items()}
                   for name, per_scale in summary.items()}
        utility.atomic_write_text(self.dir / 'metrics.json', json.dumps(rounded, indent=2) + '\n')
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator='\n')
        w.writerow(['dataset', 'scale', 'image', *names])
        for r in rows:
            w.writerow([r['dataset'], r['scale'], r['image'], *(f'{r[n]:.6f}' for n in names)])
        utility.atomic_write_text(self.dir / 'metrics.csv', buf.getvalue())

    def plot_curves(self, name, title, ylabel, series, epochs=None):
        """Write ``<name>.png`` and ``<name>.pdf`` (see :func:`write_curves`); rank 0 only."""
        if self.writer:
            write_curves(self.dir, name, title, ylabel, series, epochs)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, state):
        if self.writer:
            utility.atomic_torch_save(state, self.dir / CHECKPOINT)

    def load_checkpoint(self):
        return load_checkpoint(self.dir / CHECKPOINT)

    def save_weights(self, state_dict, name):
        """A plain state_dict (EDSR-PyTorch's format) as model/<name>.pt."""
        if self.writer:
            utility.atomic_torch_save(state_dict, self.dir / 'model' / f'{name}.pt')

    def save_image(self, dataset, filename, tensor, rgb_range):
        """tensor [C, H, W] in [0, rgb_range] -> results-<dataset>/<filename>.png (8 bit)."""
        if not self.writer:
            return
        import imageio.v3 as iio
        img = imageops.to_uint8(tensor, rgb_range).permute(1, 2, 0).cpu().numpy()
        if img.shape[2] == 1:
            img = img[:, :, 0]
        utility.atomic_write_bytes(self.dir / f'results-{dataset}' / f'{filename}.png',
                                   iio.imwrite('<bytes>', img, extension='.png'))

