"""The training loop with EDSR-PyTorch semantics.

One epoch is ``--test_every`` batches, each one ``Trainer.step``; after each epoch the
model is evaluated (``evaluate.evaluate``) on ``--data_test`` and
``experiment/<name>/checkpoint.pt`` is rewritten atomically with everything needed to
continue the run exactly (``--load <name>``).
"""
import contextlib
import math

import torch
import torch.distributed as dist
from tqdm import tqdm

import experiment
import metric as metric_pkg
import utility
from model import sr_of
from best import Best
from ema import EMA
from evaluate import (MetricHistory, describe_protocol, evaluate, first_test_image,
                      format_scores, protocol_fields)


def make_optimizer(args, params):
    if args.optimizer == 'SGD':
        return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum,
                               weight_decay=args.weight_decay)
    if args.optimizer == 'RMSprop':
        return torch.optim.RMSprop(params, lr=args.lr, eps=args.epsilon,
                                   weight_decay=args.weight_decay)
    return torch.optim.Adam(params, lr=args.lr, betas=tuple(args.betas), eps=args.epsilon,
                            weight_decay=args.weight_decay)


class Trainer:
    """Runs epochs (``train``) and evaluations (``test``) for one run.

    ``model`` is the ``model.Model`` wrapper, ``loss`` the composite ``loss.Loss`` (None with
    --test_only), ``exp`` the ``experiment.Experiment`` of the run.
    """

    def __init__(self, args, loader, model, loss, exp, device, rank=0, world_size=1):
        self.args = args
        self.loader_train = loader.loader_train
        self.loader_test = loader.loader_test
        self.data = loader
        self.model = model
        self.loss = loss
        self.exp = exp
        self.device = device
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.iteration = 0
        self.error_last = None
        which = args.best_key[2]
        self.best = Best(*args.best_key, higher_is_better=not metric_pkg.lower_is_better(which),
                         fmt=metric_pkg.log_format(which))
        self.history = MetricHistory()     # test scores per evaluation, for the plots
        self.skipped = 0
        self.amp_dtype = None
        if args.precision == 'amp':
            self.amp_dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16

        self.trainable = model.trainable_parameters()
        self.optimizer = self.scheduler = self.ema = self.ddp = None
        self.scaler = None
        self.synth = None
        if not args.test_only:
            self.optimizer = make_optimizer(args, self.trainable)
            self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
                self.optimizer, milestones=list(args.decay), gamma=args.gamma)
            if self.amp_dtype == torch.float16:
                self.scaler = torch.amp.GradScaler('cuda')
            if args.ema_decay > 0:
                self.ema = EMA(model.get_model(), args.ema_decay)
            if world_size > 1:
                from torch.nn.parallel import DistributedDataParallel as DDP
                # A multi-scale network (MDSR) leaves the other scales' branches unused.
                self.ddp = DDP(model, device_ids=[device.index] if device.type == 'cuda' else None,
                               find_unused_parameters=model.multi_scale)
            # Other degradations than bicubic: the LR is made here from the HR patches.
            from degradation import _training
            self.synth = _training.make(args, rank, world_size)
            if exp.resume:
                self._resume()
            self.exp.log(f'Best model is chosen on {self.best.describe()}', echo=False)
        self.exp.log('Metrics: ' + ', '.join(f'{metric_pkg.label(n)} ({metric_pkg.direction(n)})'
                                             for n in args.metrics))
        self.exp.log('Protocol: ' + describe_protocol(args))
        files = metric_pkg.weight_files(metric_pkg.build(args, device))
        if files:
            self.exp.log('Metric weights: ' + files, echo=False)
        self._epoch_lr = None       # lr and loss means of the last epoch, for TensorBoard
        self._epoch_means = {}
        self.board = None
        if args.tensorboard and rank == 0:
            import tboard
            self.board = tboard.open_board(exp, self.epoch)

    # ------------------------------------------------------------------ helpers
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _prepare(self, *tensors):
        return [t.to(self.device, non_blocking=True) for t in tensors]

    def age(self):
        """SPL age: iterations done (counting the current one) / iterations per epoch."""
        return self.iteration / self.args.test_every

    def terminate(self):
        return self.epoch >= self.args.epochs

    def close(self):
        """Flush and close what stays open during the run (the TensorBoard writer)."""
        if self.board is not None:
            self.board.close()
            self.board = None

    # ------------------------------------------------------------------ checkpoint
    def state(self):
        state = {
            'model': self.model.get_model().state_dict(),
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict(),
            'epoch': self.epoch,
            'iteration': self.iteration,
            'age': self.age(),
            'error_last': self.error_last,
            'skipped': self.skipped,
            'loss': self.loss.state_dict(),
            'loss_log': self.loss.log_state(),
            'best': self.best.state,
            'metric_epochs': list(self.history.epochs),
            'metric_history': self.history.scores,
            'rng': experiment.rng_state(),
            'args': self.args.as_dict(),
        }
        if self.scaler is not None:
            state['scaler'] = self.scaler.state_dict()
        if self.ema is not None:
            state['ema'] = self.ema.state_dict()
        return state

    def _resume(self):
        # On the CPU: RNG states must be CPU tensors; load_state_dict moves the rest.
        ckpt = self.exp.load_checkpoint()
        experiment.check_checkpoint(ckpt, self.exp.path('checkpoint.pt'))
        self.model.load(ckpt['model'], str(self.exp.path('checkpoint.pt')))
        self.optimizer.load_state_dict(ckpt['optimizer'])
        self.scheduler.load_state_dict(ckpt['scheduler'])
        try:
            self.loss.load_state_dict(ckpt['loss'])
        except RuntimeError:
            saved = ckpt.get('args', {}).get('loss', '?')
            raise utility.UserError(f'the checkpoint was trained with --loss {saved!r}, whose '
                                    f'state does not fit --loss {self.args.loss!r}; resume '
                                    f'with the same --loss') from None
        self.loss.load_log_state(ckpt['loss_log'])
        if self.scaler is not None and 'scaler' in ckpt:
            self.scaler.load_state_dict(ckpt['scaler'])
        if self.ema is not None:
            if 'ema' in ckpt:
                self.ema.load_state_dict(ckpt['ema'])
            else:
                self.exp.log('checkpoint has no EMA weights; the average starts from the '
                             'loaded model')
        self.epoch = ckpt['epoch']
        self.iteration = ckpt['iteration']
        self.error_last = ckpt.get('error_last')
        self.skipped = ckpt.get('skipped', 0)
        if not self.best.restore(ckpt.get('best')):
            self.exp.log(f'The checkpoint\'s best model was not chosen by '
                         f'{self.best.metric.upper()}; the best score starts afresh')
        self.history = MetricHistory(ckpt.get('metric_epochs', []),
                                     ckpt.get('metric_history', {}))
        experiment.set_rng_state(ckpt['rng'])
        for line in experiment.resume_notes(ckpt.get('args', {}), self.args, self.epoch,
                                            self.iteration, self.scheduler.get_last_lr()[0]):
            self.exp.log(line)

    def _save(self, is_best):
        state = self.state()
        self.exp.save_weights(state['model'], 'model_latest')
        if self.args.save_models:
            self.exp.save_weights(state['model'], f'model_{self.epoch}')
        if self.ema is not None:
            self.exp.save_weights(state['ema'], 'model_ema')
        if is_best:
            # The weights that were evaluated (the average, with --ema_decay) made the score.
            self.exp.save_weights(state.get('ema', state['model']), 'model_best')
        # Last: an interruption before it resumes from the previous epoch, which redoes (and
        # rewrites) everything above, so the weight files always match the checkpoint.
        self.exp.save_checkpoint(state)

    # ------------------------------------------------------------------ training
    def _skip_batch(self, total):
        """A NaN/inf loss, or one above skip_threshold x last epoch's mean, is not applied."""
        value = total.detach().float()
        bad = ~torch.isfinite(value)
        if self.error_last is not None:
            bad = bad | (value > self.args.skip_threshold * self.error_last)
        if self.ddp is not None:  # every rank must take the same decision
            flag = bad.to(torch.float32).reshape(1)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            bad = flag[0] > 0
        return bool(bad)

    def step(self, lr_img, hr_img, idx_scale=0):
        """One training iteration on a batch (LR [B, C, h, w], HR [B, C, s*h, s*w] in
        [0, rgb_range], on the training device): forward (autocast with --precision amp),
        loss at the current SPL age, skip check, backward, gradient clipping, optimiser step,
        EMA update.  Returns the total loss tensor, or None when the batch was skipped (the
        skip is logged and left out of the epoch means).

        The step protocol (HOUSE rule 14): the network gets the inputs its module declares
        (``TRAIN_INPUTS``, e.g. the HR image of a diffusion step) and may return auxiliary
        outputs; the loss gets, besides (sr, hr), the inputs its terms declare
        (``Loss.needs()``): the age, the LR batch, the EMA generator's output, the model's
        auxiliary outputs.  Nothing here depends on which model or term it is."""
        args = self.args
        net = self.ddp if self.ddp is not None else self.model
        self.iteration += 1
        self.optimizer.zero_grad(set_to_none=True)
        given = {'hr': hr_img, 'lr': lr_img}
        with self._autocast():
            out = net(lr_img, idx_scale, **{k: given[k] for k in self.model.train_inputs})
        outputs = dict(out) if isinstance(out, dict) else {'sr': out}
        sr = outputs.pop('sr')
        inputs = {'age': self.age(), 'lr': lr_img}
        inputs.update((k, v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
                      for k, v in outputs.items())
        if 'sr_ema' in self.loss.needs():
            inputs['sr_ema'] = self._ema_output(lr_img, idx_scale)
        # Losses run in float32 (the SSL op always does).
        total = self.loss(sr.float(), hr_img, **inputs)
        if self._skip_batch(total):
            self.loss.discard_last()
            return None
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            total.backward()
        if args.gclip > 0:
            torch.nn.utils.clip_grad_norm_(self.trainable, args.gclip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model.get_model())
        return total

    @torch.no_grad()
    def _ema_output(self, lr_img, idx_scale):
        """The EMA generator's SR of the batch (float32, no gradient), for terms that compare
        with it (LDL).  The averaged network stays in eval mode, as BasicSR's net_g_ema: no
        dropout or drop-path draws, so the run's random stream is the same as without it."""
        with self.model.weights_of(self.ema.shadow), self._autocast():
            return sr_of(self.model(lr_img, idx_scale)).float()

    def train(self):
        """One epoch of ``--test_every`` steps, then the lr schedule and the loss plots."""
        args = self.args
        self.epoch += 1
        epoch = self.epoch
        self.data.set_epoch(epoch)
        self.loss.start_epoch()
        self.model.train()
        lr = self.scheduler.get_last_lr()[0]
        self.exp.log(f'[Epoch {epoch}]\tLearning rate: {lr:.2e}')
        timer = utility.Timer()
        bar = tqdm(self.loader_train, total=len(self.loader_train), ncols=100, leave=False,
                   disable=True if self.rank != 0 else None,
                   desc=f'Epoch {epoch}')
        skipped_epoch = 0
        for batch, item in enumerate(bar):
            lr_img, hr_img, _, idx_scale = item
            lr_img, hr_img = self._prepare(lr_img, hr_img)
            if self.synth is not None:
                lr_img, hr_img = self.synth(hr_img, epoch, batch)
            total = self.step(lr_img, hr_img, idx_scale)
            if total is None:
                skipped_epoch += 1
                mean = 'none' if self.error_last is None else f'{self.error_last:.4g}'
                self.exp.log(f'Skip batch {batch + 1} of epoch {epoch}: loss '
                             f'{self.loss.last()["Total"]:.4g} (last epoch mean {mean})')
                continue
            if self.rank == 0 and (batch + 1) % 10 == 0:  # reading values syncs a GPU
                bar.set_postfix_str(self.loss.display(), refresh=False)
            if (batch + 1) % args.print_every == 0:
                self.exp.log(f'[{(batch + 1) * args.batch_size}/'
                             f'{len(self.loader_train) * args.batch_size}]\t'
                             f'{self.loss.display()}\t{timer.toc():.1f}s', echo=False)
        bar.close()
        self.skipped += skipped_epoch
        if skipped_epoch == len(self.loader_train):
            # Diverged: training on would evaluate, checkpoint and maybe keep as "best" the
            # weights of an epoch that learnt nothing.  The checkpoint stays at the last
            # good epoch.
            again = (f'resume from epoch {epoch - 1} with --load {self.exp.dir.name}'
                     if epoch > 1 else 'start again with --reset')
            raise utility.UserError(
                f'epoch {epoch}: all {skipped_epoch} batches were skipped (loss NaN, infinite '
                f'or above --skip_threshold {args.skip_threshold:g} x the last epoch mean), so '
                f'the run stopped: {again} and a lower --lr (or --gclip), or raise '
                f'--skip_threshold')
        means = self.loss.end_epoch()
        self._epoch_lr, self._epoch_means = lr, means
        if math.isfinite(means.get('Total', math.nan)):   # NaN when every batch was skipped
            self.error_last = means['Total']
        self.scheduler.step()
        # Terms with an optimiser of their own (GAN discriminators) follow the generator's decay.
        self.loss.set_lr(self.scheduler.get_last_lr()[0])
        self.exp.log(f'[Epoch {epoch}]\t' + '  '.join(f'{k}: {v:.4f}' for k, v in means.items())
                     + f'\t{timer.toc():.1f}s' + (f'\t({skipped_epoch} batches skipped)'
                                                  if skipped_epoch else ''))
        curves = self.loss.curves()
        for name, title, series in curves:
            self.exp.plot_curves(name, title, 'Weighted loss (epoch mean)', series)
        # A term dropped on resume: its plot would look current beside the others.
        self.exp.set_aside_plots('loss_', {name for name, _, _ in curves})

    # ------------------------------------------------------------------ evaluation
    def _evaluated_weights(self):
        """The context in which the model is evaluated: with the EMA average (--ema_decay)
        swapped in, else the live weights."""
        return self.model.weights_of(self.ema.shadow if self.ema is not None else None)

    def test(self):
        """Evaluate on every test set and scale (rank 0); log, write metrics and checkpoint."""
        if self.rank == 0:
            is_best = self._evaluate()
            if not self.args.test_only:
                self._save(is_best)
        if self.world_size > 1:
            dist.barrier()

    def _evaluate(self):
        """Evaluate (with the EMA weights when --ema_decay is on), keep the history and the
        best score of a training run, write metrics and plots.  True for a new best."""
        args = self.args
        timer = utility.Timer()
        found = []
        training = not args.test_only
        if training:
            self.history.start(self.epoch)

        def report(name, scale, means, lr_set):
            line = format_scores(name, scale, means, lr_set)
            if training:
                self.history.add(name, scale, means)
                if self.best.concerns(name, scale):
                    found.append(self.best.update(self.epoch, means))
                    line += self.best.note()
            self.exp.log(line)

        with self._evaluated_weights():
            summary, rows = evaluate(self.model, self.loader_test, args, self.device,
                                     self._autocast, self.exp, report)
        if training:
            self.history.plot(self.exp, args.metrics)
        self.exp.write_metrics(summary, rows, args.metrics, protocol_fields(args))
        self._pictures(summary)
        self.exp.log(f'Evaluation: {timer.toc():.1f}s', echo=not args.test_only)
        return any(found)

    def _pictures(self, summary):
        """After an evaluation: TensorBoard scalars and LR/SR/HR grid (--tensorboard), the
        SPL weight map and curve of the first test image (--save_maps)."""
        args = self.args
        save_maps = args.save_maps and not args.test_only
        if self.board is None and not save_maps:
            return
        lr_img, hr_img, sr, name = first_test_image(
            self.model, self.loader_test, self._prepare, self._evaluated_weights,
            self._autocast, args.rgb_range)
        if self.board is not None:
            self.board.evaluation(self._epoch_means, self._epoch_lr, summary, lr_img[0], sr[0],
                                  hr_img[0], args.rgb_range, self.epoch)
        if save_maps and hr_img.numel():
            import maps
            maps.save_spl_map(self.exp, self.loss.terms['SPL'], sr, hr_img, self.age(),
                              f'{name} (x{args.scale[0]})', self.epoch)
