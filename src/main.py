"""Entry point: ``python src/main.py [flags]`` or ``torchrun --nproc_per_node N src/main.py ...``.

A mistake the user can fix ends with one line on stderr and exit status 2.
"""
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import utility  # noqa: E402


def env_rank():
    """(rank, world_size, local_rank) of this process under torchrun; (0, 1, 0) otherwise."""
    return (int(os.environ.get('RANK', 0)), int(os.environ.get('WORLD_SIZE', 1)),
            int(os.environ.get('LOCAL_RANK', 0)))


def _setup_distributed(args):
    """Join the torchrun process group, if any. Returns (rank, world_size, device)."""
    import datetime

    import torch
    import torch.distributed as dist
    rank, world_size, local_rank = env_rank()
    use_cuda = torch.cuda.is_available() and not args.cpu
    if world_size > 1:
        if args.test_only:
            raise utility.UserError('--test_only runs on one process; launch it with python, '
                                    'not torchrun')
        if args.batch_size % world_size:
            raise utility.UserError(f'--batch_size {args.batch_size} is the global batch and must '
                                    f'be divisible by the {world_size} processes')
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device('cuda', local_rank)
    else:
        device = torch.device('cpu')
    if world_size > 1:
        # The other ranks wait at a barrier while rank 0 evaluates, which on large test sets
        # takes longer than the default timeout (10 min for NCCL).  A rank that dies is
        # still noticed at once: torchrun stops the others.
        dist.init_process_group(backend='nccl' if use_cuda else 'gloo',
                                timeout=datetime.timedelta(hours=2))
    return rank, world_size, device


def run(argv=None):
    import option
    args = option.parse_args(argv)

    import random

    import numpy as np
    import torch

    import data
    import loss as loss_pkg
    import metric as metric_pkg
    import model as model_pkg
    from experiment import Experiment
    from trainer import Trainer

    if args.tensorboard:
        import tboard
        tboard.require()
    rank, world_size, device = _setup_distributed(args)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    # Data, model and loss first: a mistake in them (missing folder, weights file, loss
    # settings) is reported before the run folder is created or an old one is archived.
    # A mistyped --load or --model first: a missing dataset would hide it.
    if args.load and not args.reset:
        option.check_load(args.load)
    import registry
    registry.load('model', args.model, 'make_model', '--model')
    data.refuse_training_on_test_sets(args)
    loader = data.Data(args, rank=rank, world_size=world_size)
    net = model_pkg.Model(args, device)
    if not args.test_only and not net.trainable_parameters():
        raise utility.UserError(f'--model {args.model} has no trainable parameters; use it '
                                f'with --test_only')
    if args.test_only and not args.pre_train and net.trainable_parameters():
        # It would score randomly initialised weights (about 11 dB on Set5) as a result.
        raise utility.UserError(f'--test_only with --model {args.model} needs trained weights: '
                                f'give --pre_train PATH (or --pre_train download)')
    criterion = None
    if not args.test_only:
        criterion = loss_pkg.Loss(args, raw_outputs=net.raw_outputs).to(device)
        # The step protocol: each term's NEEDS must be something this run's steps offer.
        offered = ('age', 'lr') + (('sr_ema',) if args.ema_decay > 0 else ()) + net.aux_outputs
        criterion.check_inputs(offered, hints={
            'sr_ema': 'it is the EMA generator\'s output: give --ema_decay (e.g. 0.999)'})
    # LPIPS/DISTS networks: a missing weight file is refused here, before the run folder.
    metric_pkg.build(args, device)
    exp = Experiment(args, writer=(rank == 0))
    trainer = None
    try:
        if args.load:
            exp.log(_inherited_note(args))
        if net.load_note:
            exp.log(net.load_note)
        trainer = Trainer(args, loader, net, criterion, exp, device,
                          rank=rank, world_size=world_size)
        if args.test_only:
            trainer.test()
        else:
            while not trainer.terminate():
                trainer.train()
                trainer.test()
        _report_skipped(loader, exp)
    except utility.UserError as e:
        # Also in the run's log, where one looks later; main() prints it on stderr.
        try:
            exp.log(f'error: {e}', echo=False)
        except utility.UserError:   # the log itself cannot be written (full disk)
            pass
        raise
    except KeyboardInterrupt:
        if rank == 0:
            print(f'main.py: interrupted; {_resume_hint(args, exp)}', file=sys.stderr)
        return 130
    finally:
        if trainer is not None:
            trainer.close()
        exp.close()
        if world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


def _inherited_note(args):
    """The log line saying that run --load's arguments are the defaults, and which flags
    given now changed them."""
    what = (f'Evaluating {args.pre_train} with the arguments of run {args.load}'
            if args.test_only else f'Resuming run {args.load} with its saved arguments')
    if not args.overrides:
        return f'{what}; none changed on the command line'
    return f'{what}; changed on the command line: ' + ', '.join(
        f'--{k} {old!r} -> {new!r}' for k, old, new in args.overrides)


def _report_skipped(loader, exp):
    """UserError listing the test images that could not be read (Demo skips them)."""
    skipped = [m for test in loader.loader_test for m in getattr(test, 'skipped', [])]
    if skipped:
        for message in skipped:
            exp.log(f'skipped: {message}', echo=False)
        raise utility.UserError(f'{len(skipped)} image(s) could not be read and were skipped '
                                f'(the other results are in {exp.dir}): ' + '; '.join(skipped))


def _resume_hint(args, exp):
    from experiment import CHECKPOINT
    if args.test_only:
        return 'the evaluation did not finish'
    if not exp.path(CHECKPOINT).is_file():
        return 'no epoch was completed, so there is nothing to resume'
    return (f'{exp.path(CHECKPOINT)} holds the last completed epoch; continue with '
            f'--load {exp.dir.name}')


def main(argv=None):
    return utility.run_cli(run, 'main.py', argv)


if __name__ == '__main__':
    sys.exit(main())
