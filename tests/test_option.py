"""Command-line options and templates: typed values, one-line refusals, templates as defaults."""
import argparse

import pytest

import model
import option
import template
from cli import assert_user_error, run_main


def _flag_argv(parser, dest, value):
    """The command-line words that set ``dest`` to ``value`` explicitly."""
    action = next(a for a in parser._actions if a.dest == dest)
    if isinstance(action, argparse._StoreTrueAction):
        assert value is True, dest
        return [action.option_strings[0]]
    words = value if isinstance(value, (tuple, list)) else [value]
    return [action.option_strings[0]] + [str(w) for w in words]


@pytest.mark.parametrize('name', sorted(template.TEMPLATES))
def test_every_template_sets_valid_values_of_existing_flags(name):
    """Each key is a flag, each value is one the flag itself accepts, the model exists."""
    parser = option.build_parser()
    dests = {a.dest for a in parser._actions}
    preset = template.TEMPLATES[name]
    assert set(preset) <= dests, set(preset) - dests
    from_template = option.parse_args(['--template', name])
    for key, value in preset.items():
        # On top of the template itself: a flag that only some terms or models read (e.g.
        # --ssl_search) is refused on a command line whose --loss / --model lacks them.
        explicit = option.parse_args(['--template', name] + _flag_argv(parser, key, value))
        assert getattr(from_template, key) == getattr(explicit, key), key
    if 'model' in preset:
        assert preset['model'].lower() in model.available_models()


def test_command_line_overrides_the_template():
    args = option.parse_args(['--template', 'ESRGAN_SSL', '--scale', '2', '--lr', '2e-4',
                              '--betas', '0.5', '0.9', '--loss', '1*L1'])
    assert args.scale == [2] and args.lr == 2e-4 and args.betas == (0.5, 0.9)
    assert args.loss_terms == [(1.0, 'L1')]
    assert args.model == 'RRDBNet' and args.patch_size == 128   # the rest of the template


def test_later_template_overrides_earlier_one():
    args = option.parse_args(['--template', 'EDSR_paper+RCAN'])
    assert args.model == 'RCAN' and args.n_resblocks == 20 and args.res_scale == 0.1


@pytest.mark.parametrize('argv, needle', [
    (['--lr', '-1'], '--lr'),
    (['--betas', '1.5', '0.9'], '--betas'),
    (['--epsilon', '-1e-8'], '--epsilon'),
    (['--weight_decay', '-1'], '--weight_decay'),
    (['--momentum', '-0.9'], '--momentum'),
    (['--ema_decay', '1'], '--ema_decay'),
    (['--ema_decay', '-0.5'], '--ema_decay'),
    (['--gamma', '0'], '--gamma'),
    (['--gclip', '-1'], '--gclip'),
    (['--skip_threshold', '0'], '--skip_threshold'),
    (['--seed', '-1'], '--seed'),
    (['--seed', str(2 ** 32)], '--seed'),
    (['--RDNkSize', '2'], '--RDNkSize'),
    (['--ssl_search', '24'], '--ssl_search'),
    (['--ssl_window', '0'], '--ssl_window'),
    (['--n_feats', 'x'], '--n_feats'),
    (['--lr', 'nan'], '--lr'),
    (['--template', 'NoSuch'], 'NoSuch'),
])
def test_bad_values_exit_2_with_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as info:
        option.parse_args(argv)
    assert info.value.code == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], lines
    assert "invalid _" not in lines[0]   # argparse's wording for a bare type function


@pytest.mark.parametrize('argv, dest, value', [
    (['--lr', '0'], 'lr', 0.0), (['--ema_decay', '0'], 'ema_decay', 0.0),
    (['--betas', '0', '0.999'], 'betas', (0.0, 0.999)), (['--seed', '0'], 'seed', 0),
    (['--RDNkSize', '5'], 'RDNkSize', 5), (['--gclip', '0'], 'gclip', 0.0),
    (['--template', ''], 'model', 'EDSR'),
])
def test_boundary_values_are_accepted(argv, dest, value):
    assert getattr(option.parse_args(argv), dest) == value


def test_optimizer_value_is_refused_through_the_cli(tmp_path):
    """A value torch.optim would reject with a traceback is one line and exit 2."""
    proc = run_main(['--model', 'Bicubic', '--scale', '2', '--test_only', '--n_threads', '0',
                     '--betas', '0.9', '1.5'], exp_root=tmp_path)
    assert_user_error(proc, '--betas', '[0, 1)')


def test_help_lists_templates_and_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        option.parse_args(['--help'])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in template.TEMPLATES)
    assert '(default: 1*L1)' in text and '(default: 0.9 0.999)' in text
    for group in ('run:', 'data:', 'model:', 'training:', 'optimisation:', 'loss:', 'output:'):
        assert group in text
