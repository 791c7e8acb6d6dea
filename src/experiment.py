"""The run folder ``experiment/<name>``: logs, config, metrics files, plots and checkpoints.

Only rank 0 writes (``Experiment(..., writer=False)`` on the other ranks turns every
write into a no-op).  Checkpoints go through a temporary file and ``os.replace``, so a
crash leaves the previous checkpoint intact.
"""
import csv
import datetime
import io
import json
import math
import os
import random
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import torch

import imageops
import lr_set
import utility

CHECKPOINT = 'checkpoint.pt'


def load_checkpoint(path):
    """The dict in a run's checkpoint.pt (weights-only, on the CPU); UserError when unusable."""
    return utility.load_pt(path, missing='check the run name, or start a new run with --save '
                                         'instead of --load')


def rng_state():
    """The RNG states of torch, random, numpy (and CUDA) as weights-only-loadable values."""
    state = {'torch': torch.get_rng_state(), 'random': random.getstate()}
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state['numpy'] = {'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos),
                      'has_gauss': int(has_gauss), 'cached': float(cached)}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore what ``rng_state`` returned."""
    torch.set_rng_state(state['torch'])
    version, internal, gauss = state['random']
    random.setstate((version, tuple(internal), gauss))
    n = state['numpy']
    np.random.set_state(('MT19937', n['keys'].numpy().astype(np.uint32), n['pos'],
                         n['has_gauss'], n['cached']))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


# Optimizer and scheduler settings: load_state_dict restores them from the checkpoint.
RESTORED_ON_RESUME = ('optimizer', 'lr', 'momentum', 'betas', 'epsilon', 'weight_decay',
                       'decay', 'gamma')


# What a checkpoint must hold to continue a run.
REQUIRED_KEYS = ('model', 'optimizer', 'scheduler', 'epoch', 'iteration', 'rng')


def check_checkpoint(ckpt, path):
    """UserError when ``ckpt`` (the dict of ``path``) lacks what resuming needs."""
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise utility.UserError(f'{path} lacks {", ".join(missing)}; '
                                f'it is not a checkpoint written by this code')


def resume_notes(old, args, epoch, iteration, lr):
    """Log lines of a resumed run: where it resumes, the arguments that differ from the
    checkpoint's ``old`` ones (and which of them are not applied), and whether anything is
    left to train."""
    lines = []
    changed = [k for k, v in args.as_dict().items()
               if k not in ('load', 'save', 'argv', 'reset', 'epochs', 'n_threads',
                            'raw_args', 'overrides')
               and k in old and _plain(old[k]) != _plain(v)]
    lines.append(f'Resumed from epoch {epoch} (iteration {iteration}, lr {lr:.2e})')
    if changed:
        lines.append('Arguments that differ from the checkpoint: ' + ', '.join(
            f'{k}: {old[k]!r} -> {args.as_dict()[k]!r}' for k in changed))
    kept = [k for k in changed if k in RESTORED_ON_RESUME]
    if kept:
        lines.append('Not applied: the optimizer and the lr schedule continue from the '
                     'checkpoint (' + ', '.join('--' + k for k in kept) + ')')
    if epoch >= args.epochs:
        lines.append(f'The run has already done {epoch} epochs (--epochs {args.epochs}); '
                     f'nothing to train: raise --epochs to continue')
    return lines

def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def write_curves(directory, name, title, ylabel, series, epochs=None):
    """Draw ``series`` ({label: [value per epoch]}) against ``epochs`` (default 1, 2, ...)
    into ``directory/<name>.png`` and ``.pdf``, atomically.  Returns the paths written (none
    when every series is empty)."""
    from matplotlib.ticker import MaxNLocator

    import figures
    series = {label: list(values) for label, values in series.items() if len(values)}
    if not series:
        return []
    figure = figures.new_figure(figsize=(6.4, 4.8))
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
    written = [Path(directory) / f'{name}.{ext}' for ext in ('png', 'pdf')]
    for path in written:
        figures.save(figure, path)
    return written


def _unique_archive_name(path):
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    candidate = path.with_name(f'{path.name}_archived_{stamp}')
    n = 1
    while candidate.exists():
        candidate = path.with_name(f'{path.name}_archived_{stamp}_{n}')
        n += 1
    return candidate


LOCK = 'run.lock'


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # exists, owned by another user
        return True
    return True


def read_lock(folder):
    """(pid, host) of the lock in ``folder``, or None when there is none or it is unreadable."""
    try:
        owner = json.loads((Path(folder) / LOCK).read_text(encoding='utf-8'))
        return int(owner['pid']), str(owner['host'])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lock_is_live(owner):
    """Whether the process of a lock (pid, host) may still run: always so on another host."""
    pid, host = owner
    return host != socket.gethostname() or _process_alive(pid)


def _folder_error(error, folder):
    """A one-line UserError for an OSError met creating or writing the run folder."""
    user = utility.write_error(error, Path(error.filename or Path(folder) / 'log.txt'))
    if user is not None:
        return user
    return utility.UserError(f'cannot use the run folder {folder} ({error.strerror or error}); '
                             f'check it, or choose another --save name')


def _strict_json(obj):
    """``obj`` with every non-finite float replaced by None (JSON null)."""
    if isinstance(obj, dict):
        return {k: _strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class Experiment:
    """Owns ``experiment/<name>`` for one run.

    ``resume`` is True when the run continues from ``checkpoint.pt`` (``--load``).  While
    the run lives the folder holds ``run.lock`` (pid and host); a second run on the same
    folder is refused, a lock left by a dead process is taken over.
    """

    def __init__(self, args, writer=True, root=None):
        self.args = args
        self.writer = writer
        self.root = Path(root) if root is not None else utility.EXPERIMENT_ROOT
        # --test_only --load RUN evaluates RUN's model into --save (see option.parse_args).
        self.resume = bool(args.load) and not args.test_only
        self._lock_owned = False
        self._checkpoint_epoch = None   # epoch of the checkpoint on disk, when known
        self._since_checkpoint = []     # files written after it (same order as written)
        if args.load and args.reset:
            raise utility.UserError(f'--load {args.load} resumes that run and --reset archives it; '
                                    f'give only one of them')
        name = args.load if self.resume else args.save
        if args.test_only and args.load and name == args.load:
            raise utility.UserError(f'--test_only --load {args.load} evaluates that run\'s model; '
                                    f'give the evaluation another --save name than {name}')
        self.dir = (self.root / name).resolve()
        if self.root.resolve() not in self.dir.parents:
            raise utility.UserError(f'run folder {self.dir} is outside {self.root}; use a plain '
                                    f'run name with --save/--load')
        self._log_file = None
        if writer:
            self._refuse_if_locked()
        if self.resume:
            if not (self.dir / CHECKPOINT).is_file():
                raise utility.UserError(
                    f'cannot resume: {self.dir / CHECKPOINT} does not exist; start the run with '
                    f'--save {args.load} first, or check the name given to --load')
        elif args.reset:
            if writer and self.dir.exists():
                archive = _unique_archive_name(self.dir)
                try:
                    shutil.move(str(self.dir), str(archive))
                except OSError as e:
                    raise _folder_error(e, self.dir) from None
                print(f'--reset: moved the previous run to {archive}')
        elif (self.dir / CHECKPOINT).exists():
            # A test-only run would overwrite the training run's metrics files.
            raise utility.UserError(
                f'{self.dir} already holds a training run; ' + (
                    'choose another --save name for this evaluation' if args.test_only else
                    f'resume it with --load {name}, archive it with --reset, or choose another '
                    f'--save name'))
        elif (self.dir / 'metrics.json').exists():
            raise utility.UserError(
                f'{self.dir} already holds an evaluation (metrics.json); choose another --save '
                f'name, or add --reset to archive it')
        if writer:
            taken_over = self._take_lock()
            try:
                self._log_file = open(self.dir / 'log.txt', 'a', encoding='utf-8')
                self._write_config()
            except OSError as e:
                self.close()
                raise _folder_error(e, self.dir) from None
            if taken_over is not None:
                self.log(f'Took over the lock of a process that no longer runs (pid '
                         f'{taken_over[0]} on {taken_over[1]})')
            leftovers = utility.remove_temporary_files(self.dir)
            if leftovers:
                self.log(f'Removed {len(leftovers)} temporary file(s) left by an interrupted '
                         f'write: ' + ', '.join(str(p.relative_to(self.dir)) for p in leftovers))

    # ------------------------------------------------------------------ the run lock
    def _refuse_if_locked(self):
        owner = read_lock(self.dir)
        if owner is not None and lock_is_live(owner):
            raise utility.UserError(
                f'{self.dir} is in use by another run (pid {owner[0]} on {owner[1]}, see '
                f'{self.dir / LOCK}); wait for it to end or choose another --save name (delete '
                f'the lock file only if that process is gone)')

    def _take_lock(self):
        """Create run.lock; returns the (pid, host) of a dead owner taken over, else None."""
        text = json.dumps({'pid': os.getpid(), 'host': socket.gethostname()}) + '\n'
        taken_over = None
        for _ in range(3):
            try:
                (self.dir / 'model').mkdir(parents=True, exist_ok=True)
                fd = os.open(self.dir / LOCK, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = read_lock(self.dir)
                if owner is not None and lock_is_live(owner):
                    self._refuse_if_locked()
                taken_over = owner or (0, 'unknown')
                try:
                    os.unlink(self.dir / LOCK)
                except FileNotFoundError:
                    pass
                continue
            except OSError as e:
                raise _folder_error(e, self.dir) from None
            try:
                with os.fdopen(fd, 'w', encoding='utf-8') as f:
                    f.write(text)
            except OSError as e:
                os.unlink(self.dir / LOCK)
                raise _folder_error(e, self.dir) from None
            self._lock_owned = True
            return taken_over
        raise utility.UserError(f'cannot take the lock {self.dir / LOCK}: other runs keep '
                                f'creating it; choose another --save name')

    def _release_lock(self):
        if self._lock_owned:
            self._lock_owned = False
            if read_lock(self.dir) == (os.getpid(), socket.gethostname()):
                try:
                    os.unlink(self.dir / LOCK)
                except OSError:
                    pass

    def path(self, *parts):
        return self.dir.joinpath(*parts)

    # ------------------------------------------------------------------ text logs
    def _write_config(self):
        now = datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')
        lines = [now, 'command: ' + ' '.join([sys.executable, sys.argv[0]] + list(self.args.argv)), '']
        lines += [f'{k}: {v}' for k, v in sorted(self.args.as_dict().items())
                  if k != 'raw_args']       # the same values again, before derivation
        with open(self.dir / 'config.txt', 'a', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n\n')

    def log(self, text, echo=True):
        """Print ``text`` (rank 0) and append it to log.txt."""
        if not self.writer:
            return
        if echo:
            print(text, flush=True)
        if self._log_file is None:
            return
        try:
            self._log_file.write(text + '\n')
            self._log_file.flush()
        except OSError as e:
            self._log_file = None   # a full disk: stop logging, report the write error once
            raise _folder_error(e, self.dir) from None

    def close(self):
        if self._log_file is not None:
            try:
                self._log_file.close()
            except OSError:     # a full disk may refuse the last flush
                pass
            self._log_file = None
        self._release_lock()

    # ------------------------------------------------------------------ metrics
    def write_metrics(self, summary, rows, names=('psnr', 'ssim'), protocol=None):
        """metrics.json ({dataset: {"x2": {name: mean}}}, 6 decimals, under "_lr_sets"
        {dataset: {"x2": LR set}}, and ``"protocol": {switch: value}`` when given) and
        metrics.csv (one row per image: dataset, scale, image, one column per metric of
        ``names`` that has per-image values with 6 decimals - a metric of the whole set, FID,
        is in metrics.json only - then the LR set's columns ``lr_set.FIELDS``); an LR set is
        ``lr_set.identity``'s record of the images read."""
        if not self.writer:
            return
        rounded = {name: {scale: {key: round(value, 6) for key, value in means.items()}
                          for scale, means in per_scale.items()}
                   for name, per_scale in summary.items()}
        if protocol:
            rounded['protocol'] = dict(protocol)
        names = [n for n in names if not rows or n in rows[0]]
        sets = {}
        for r in rows:
            if r.get('lr_set') is not None and r['dataset'] in summary:
                sets.setdefault(r['dataset'], {})[f'x{r["scale"]}'] = r['lr_set']
        if sets:
            rounded[lr_set.JSON_KEY] = sets
        # Strict JSON: a NaN or infinite score (a diverged model) is written as null.
        text = json.dumps(_strict_json(rounded), indent=2, allow_nan=False) + '\n'
        self._tracked_write('metrics.json', utility.atomic_write_text, self.dir / 'metrics.json',
                            text)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator='\n')
        w.writerow(['dataset', 'scale', 'image', *names, *lr_set.FIELDS])
        for r in rows:
            ident = r.get('lr_set')
            w.writerow([r['dataset'], r['scale'], r['image'], *(f'{r[n]:.6f}' for n in names),
                        *(lr_set.csv_values(ident) if ident else [''] * len(lr_set.FIELDS))])
        self._tracked_write('metrics.csv', utility.atomic_write_text, self.dir / 'metrics.csv',
                            buf.getvalue())

    def plot_curves(self, name, title, ylabel, series, epochs=None):
        """Write ``<name>.png`` and ``<name>.pdf`` (see :func:`write_curves`); rank 0 only."""
        if self.writer:
            write_curves(self.dir, name, title, ylabel, series, epochs)

    def set_aside_plots(self, prefix, current):
        """Move ``<prefix>*.png/.pdf`` plots whose name is not in ``current`` (terms no longer
        trained, e.g. dropped from --loss on resume) into ``previous_plots/``, with a log line."""
        if not self.writer:
            return
        stale = sorted(p for ext in ('png', 'pdf') for p in self.dir.glob(f'{prefix}*.{ext}')
                       if p.stem not in current)
        if not stale:
            return
        target = self.dir / 'previous_plots'
        try:
            target.mkdir(exist_ok=True)
            for path in stale:
                os.replace(path, target / path.name)
        except OSError as e:
            raise _folder_error(e, self.dir) from None
        self.log(f'Moved the plots of terms no longer in --loss to {target}: '
                 + ', '.join(sorted({p.stem for p in stale})))

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, state):
        if self.writer:
            self._tracked_write(CHECKPOINT, utility.atomic_torch_save, state,
                                self.dir / CHECKPOINT)
            self._checkpoint_epoch = state.get('epoch')
            self._since_checkpoint = []

    def load_checkpoint(self):
        ckpt = load_checkpoint(self.dir / CHECKPOINT)
        if isinstance(ckpt, dict):
            self._checkpoint_epoch = ckpt.get('epoch')
        return ckpt

    def _tracked_write(self, name, write, *args):
        """``write(*args)``; a failed write's one-line error also says which files are newer."""
        try:
            write(*args)
        except utility.UserError as e:
            raise utility.UserError(f'{e}; {self._state_on_disk(name)}') from None
        if name != CHECKPOINT and name not in self._since_checkpoint:
            self._since_checkpoint.append(name)

    def _state_on_disk(self, failed):
        """Which of the run's files are from which epoch after ``failed`` was not written."""
        if self.args.test_only:
            return f'{failed} was not written; rerun the evaluation after freeing space'
        run = self.dir.name
        newer = [n for n in self._since_checkpoint if n != failed]
        if self._checkpoint_epoch is None:
            return (f'{failed} was not written and no epoch was checkpointed yet; start again '
                    f'with --reset after freeing space')
        epoch = self._checkpoint_epoch
        if newer:
            return (f'{failed} was not written; {", ".join(newer)} are from epoch {epoch + 1}, '
                    f'newer than checkpoint.pt (epoch {epoch}); --load {run} redoes epoch '
                    f'{epoch + 1} and rewrites them')
        return (f'{failed} was not written; checkpoint.pt holds epoch {epoch}: continue with '
                f'--load {run}')

    def save_weights(self, state_dict, name):
        """A plain state_dict (EDSR-PyTorch's format) as model/<name>.pt."""
        if self.writer:
            self._tracked_write(f'model/{name}.pt', utility.atomic_torch_save, state_dict,
                                self.dir / 'model' / f'{name}.pt')

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

