"""Every shell command shown in README.md and docs/*.md parses, and the cheap ones run.

What counts as a command:
- each line of a ```bash / ```sh / ```shell fence (``\\`` continuations joined, ``#`` comments
  dropped; in a ```console fence the lines that start with ``$ ``);
- an inline code span that starts like a command (``python src/``, ``python bench/``,
  ``python -m pytest``, ``torchrun``, ``bash``), e.g. in a table of measured figures.
A command in an indented (4-space) code block is refused: put it in a fence, where it is checked.

What is checked, page by page and in page order:
- ``python src/main.py`` / ``torchrun ... src/main.py``: ``option.parse_args`` accepts the flags
  (names, values, templates, loss string) in this process;
- another ``python src/X.py`` tool: its own parser (``_parse`` or ``build_parser``) accepts them;
  a ``bench/`` script: every ``--flag`` is one its source defines (or main.py's, when it passes
  the rest on to ``option.parse_args``);
- every file or folder a command reads (a value that looks like a path, ``--load`` and
  ``compare.py --runs`` run names, ``python -m pytest`` test files, ``bash`` scripts) is in the
  repository, or is made by an earlier command of the same page (``--save NAME`` makes
  ``experiment/NAME/``; ``--out``/``--preview`` their file; ``mkdir``/``cp``; ``bash demo.sh``
  what its active commands save), or is a shell variable (``$DATA``) that the page assigns
  (``export DATA=...``): that is how a page names what the reader supplies (a dataset root,
  downloaded weights, their own photos). ``../shared``, ``/data`` and ``/path/to/...`` are not on
  a fresh clone.

The slow suite then runs the cheap commands (``--help`` of every tool, test-only runs on the
bundled data with no weights to load) with their outputs sent to a temporary folder.
"""
import contextlib
import importlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / 'src'
PAGES = [REPO / 'README.md'] + sorted((REPO / 'docs').glob('*.md'))

SHELL_LANGS = {'bash', 'sh', 'shell', 'console', 'zsh'}
INLINE_STARTS = ('python src/', 'python3 src/', 'python bench/', 'python3 bench/',
                 'python -m pytest', 'python3 -m pytest', 'torchrun ', 'bash ')
OPERATORS = {'&&', '||', ';', '|', '&'}
# Programs a page may show without further checks (installers, shell and system tools).
FREE_PROGRAMS = {'pip', 'pip3', 'git', 'ls', 'cat', 'echo', 'lscpu', 'nproc', 'nvidia-smi',
                 'nvcc', 'du', 'df', 'head', 'tail', 'grep', 'wc', 'unzip', 'tar', 'wget', 'curl',
                 'rm', 'time', 'env', 'true', 'vmstat', 'tree', 'sha256sum', 'md5sum', 'diff',
                 'du', 'find', 'sort', 'apt-get', 'sudo', 'conda', 'source', 'set', 'ulimit'}
# Flags whose value is written, not read.
OUTPUT_FLAGS = {'--out', '--output', '--preview'}
# Directories that a fresh clone holds empty or not at all: a path into them must be made first.
GENERATED_TOPS = {'experiment', '.cache'}
FILE_EXT = re.compile(r'\.(pt|pth|ckpt|safetensors|npz|npy|png|jpe?g|bmp|tiff?|webp|json|csv|ya?ml'
                      r'|txt|py|sh|tar|zip)$', re.I)
# Flags whose value is always a path (whatever it looks like): --dir_data D, --dir_demo photos.
PATH_FLAG = re.compile(r'dir|pre_train|weights|path|file|^--(hr|sr|logdir)$')
VAR = re.compile(r'\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?')


def _shown(page):
    try:
        return page.relative_to(REPO).as_posix()
    except ValueError:
        return str(page)


@dataclass
class Command:
    page: Path
    line: int
    text: str
    argv: list
    env: dict = field(default_factory=dict)

    def where(self):
        return f'{_shown(self.page)}:{self.line}: {self.text}'


# ---------------------------------------------------------------------------- extraction
def _tokens(text):
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    return list(lex)


def _segments(line_no, text, page):
    """Commands of one shell line: split at && || ; | &, leading VAR=value taken as env."""
    try:
        tokens = _tokens(text)
    except ValueError as e:
        return [Command(page, line_no, text, ['<unparsable>', str(e)])]
    out, current = [], []
    for tok in tokens + [';']:
        if tok in OPERATORS:
            if current:
                env = {}
                while current and re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*=.*', current[0]) \
                        and len(current) > 1:
                    k, _, v = current.pop(0).partition('=')
                    env[k] = v
                out.append(Command(page, line_no, text, current, env))
            current = []
        else:
            current.append(tok)
    return out


def _fences(lines):
    """(start line number, language, [(line number, text)]) of each fenced block."""
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r'^(\s*)(```+|~~~+)\s*([\w+-]*)', lines[i])
        if not m:
            i += 1
            continue
        fence, lang, body = m.group(2), m.group(3).lower(), []
        start = i + 1
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence[:3]):
            body.append((i + 1, lines[i]))
            i += 1
        blocks.append((start, lang, body))
        i += 1
    return blocks


def page_items(page):
    """Commands of ``page`` in page order, and problems found while extracting them."""
    lines = page.read_text(encoding='utf-8').splitlines()
    fenced = set()
    items, problems = [], []
    for start, lang, body in _fences(lines):
        fenced.update(range(start, start + len(body) + 2))
        if lang not in SHELL_LANGS:
            continue
        pending, first = '', None
        for no, text in body:
            if lang == 'console':
                if not text.startswith('$ '):
                    continue
                text = text[2:]
            stripped = text.rstrip()
            if first is None:
                first = no
            if stripped.endswith('\\'):
                pending += stripped[:-1] + ' '
                continue
            full, pending = pending + stripped, ''
            if full.strip() and not full.strip().startswith('#'):
                items.extend(_segments(first, full.strip(), page))
            first = None
    prev_blank = True
    for no, text in enumerate(lines, 1):
        if no in fenced:
            prev_blank = False
            continue
        body = text.strip()
        if (text.startswith('    ') and prev_blank
                and re.match(r'(python3?|torchrun|bash) ', body)):
            problems.append(f'{_shown(page)}:{no}: command in an indented block: put '
                            f'it in a ```bash fence so that it is checked: {body}')
        elif re.match(r'(python3? (src|bench)/|python3? -m pytest|torchrun |bash \S+\.sh)', text):
            problems.append(f'{_shown(page)}:{no}: command outside a code fence: put it in '
                            f'a ```bash fence so that it is checked: {body}')
        prev_blank = not body or (prev_blank and text.startswith('    '))
        for span in re.findall(r'`([^`]+)`', text):
            if span.startswith(INLINE_STARTS):
                items.extend(_segments(no, span, page))
    items.sort(key=lambda c: c.line)
    return items, problems


# ---------------------------------------------------------------------------- page state
class PageState:
    """What the commands before the current one on a page have made or defined."""

    def __init__(self, page):
        self.page = page
        self.text = page.read_text(encoding='utf-8')
        self.made = set()          # repo-relative POSIX paths (files or folders)
        self.cwd = REPO

    def defines(self, name):
        return re.search(rf'(^|[\s;`(]){name}=', self.text, re.M) is not None

    def make(self, path):
        self.made.add(self._rel(path))

    def _rel(self, path):
        p = (self.cwd / path).resolve() if not os.path.isabs(path) else Path(path)
        try:
            return p.relative_to(REPO).as_posix()
        except ValueError:
            return p.as_posix()

    def check_input(self, value, what):
        """None when ``value`` (a path a command reads) is there; else what is wrong."""
        names = VAR.findall(value)
        if names:
            missing = [n for n in names if not self.defines(n) and n not in ('HOME', 'PWD')]
            if missing:
                return (f'{what} {value!r} uses ${missing[0]}, which this page never assigns; '
                        f'add e.g. `export {missing[0]}=...` before it')
            return None
        if value.startswith('~'):
            return (f'{what} {value!r} is outside the repository: name what the reader supplies '
                    f'with a variable the page assigns (export DATA=...; --dir_data "$DATA")')
        rel = self._rel(value)
        if any(rel == m or rel.startswith(m.rstrip('/') + '/') for m in self.made):
            return None
        if os.path.isabs(rel):
            return (f'{what} {value!r} is not in the repository: a fresh clone lacks it; name '
                    f'what the reader supplies with a variable the page assigns '
                    f'(export DATA=...; --dir_data "$DATA"), or make it earlier on the page')
        if rel.split('/')[0] in GENERATED_TOPS:
            return f'{what} {value!r} is not made by an earlier command on this page'
        if not (REPO / rel).exists():
            return f'{what} {value!r} does not exist in the repository'
        return None


def _looks_like_path(value):
    if VAR.search(value) or value.startswith(('~', './', '../', '/')):
        return True
    if re.fullmatch(r'[\d.,:/+\-x*]+', value):      # 1-800/801-900, 2+3+4, 100,60,64,48
        return False
    return '/' in value or bool(FILE_EXT.search(value))


def _option_values(argv):
    """(flag, value) pairs and positional values of a tool's argv (after the script)."""
    pairs, positional, flag = [], [], None
    for tok in argv:
        if tok.startswith('--'):
            name, eq, value = tok.partition('=')
            flag = name
            if eq:
                pairs.append((name, value))
                flag = None
            continue
        if tok.startswith('-') and len(tok) == 2 and tok[1].isalpha():
            flag = tok
            continue
        if flag is None:
            positional.append(tok)
        else:
            pairs.append((flag, tok))
    return pairs, positional


# ---------------------------------------------------------------------------- parsers
def _substitute(argv, tmp):
    """``$VAR`` -> a real (empty) temporary folder, so that a parser that checks folders passes."""
    def sub(tok):
        return VAR.sub(lambda m: str(tmp / m.group(1)), tok)
    for name in {n for tok in argv for n in VAR.findall(tok)}:
        (tmp / name).mkdir(parents=True, exist_ok=True)
    return [sub(t) for t in argv]


def _parse_with(parse, argv):
    """None when ``parse(argv)`` accepts ``argv``; else argparse's message."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parse(argv)
    except SystemExit as e:
        if e.code not in (0, None):
            return err.getvalue().strip() or f'exit status {e.code}'
    return None


def _static_flags(path):
    source = path.read_text(encoding='utf-8')
    flags = set(re.findall(r"""add(?:_argument)?\(\s*['"](--?[\w-]+)['"]""", source))
    flags |= set(re.findall(r"""['"](--[\w-]+)['"]\s*,\s*['"]--""", source))
    passes_on = 'option.parse_args' in source
    return flags | {'-h', '--help'}, passes_on


def _main_flags():
    import option
    return {o for a in option.build_parser()._actions for o in a.option_strings}


def parse_tool(script, argv, tmp):
    """None when ``script`` (a repo path) accepts ``argv``; else why not."""
    rel = script.relative_to(REPO).as_posix()
    argv = _substitute(argv, tmp)
    if '--help' in argv or '-h' in argv:
        return None                       # checked by running it (slow suite)
    if rel == 'src/main.py':
        import option
        return _parse_with(option.parse_args, argv)
    if script.parent == SRC:
        module = importlib.import_module(script.stem)
        if hasattr(module, '_parse'):
            return _parse_with(module._parse, argv)
        if hasattr(module, 'build_parser'):
            return _parse_with(lambda a: module.build_parser().parse_args(a), argv)
    flags, passes_on = _static_flags(script)
    if passes_on:
        flags |= _main_flags()
    for tok in argv:
        if tok.startswith('-') and not re.fullmatch(r'-[\d.]+(e-?\d+)?', tok):
            name = tok.partition('=')[0]
            if name not in flags:
                return f'{rel} has no flag {name}'
    return None


# ---------------------------------------------------------------------------- one command
def _script_saves(script):
    """Run folders that a shell script's active (uncommented) commands save into."""
    saves = set()
    for line in script.read_text(encoding='utf-8').splitlines():
        code = line.split('#', 1)[0]
        saves.update(re.findall(r'--save\s+(\S+)', code))
    return saves


def _python_target(cmd, state):
    """(script path or None, its argv) for python / torchrun commands."""
    argv = cmd.argv
    if argv[0] == 'torchrun':
        rest = [a for a in argv[1:]]
        for i, tok in enumerate(rest):
            if tok.endswith('.py'):
                return tok, rest[i + 1:]
        return None, []
    rest = argv[1:]
    while rest and rest[0].startswith('-') and rest[0] not in ('-m', '-c'):
        rest = rest[1:]                   # python -u, -X ...
    if not rest:
        return None, []
    return rest[0], rest[1:]


def check_command(cmd, state, tmp):
    """Problems of one command (a list of strings); updates ``state`` with what it makes."""
    argv = cmd.argv
    prog = os.path.basename(argv[0])
    if prog == '<unparsable>':
        return [f'cannot split into words ({argv[1]})']
    if prog == 'export' or (len(argv) == 1 and '=' in argv[0]):
        return []
    if prog == 'cd':
        target = argv[1] if len(argv) > 1 else str(REPO)
        problem = state.check_input(target, 'cd')
        if problem is None:
            state.cwd = (state.cwd / target).resolve()
        return [problem] if problem else []
    if prog in ('mkdir',):
        for a in argv[1:]:
            if not a.startswith('-'):
                state.make(a)
        return []
    if prog in ('cp', 'mv', 'ln'):
        paths = [a for a in argv[1:] if not a.startswith('-')]
        problems = [p for p in (state.check_input(a, prog) for a in paths[:-1]) if p]
        if paths:
            state.make(paths[-1])
        return problems
    if prog == 'bash':
        script = argv[1] if len(argv) > 1 else ''
        problem = state.check_input(script, 'script')
        if problem:
            return [problem]
        for name in _script_saves(state.cwd / script):
            state.make(f'experiment/{name}')
        return []
    if prog == 'tensorboard':
        pairs, _ = _option_values(argv[1:])
        return [p for p in (state.check_input(v, f) for f, v in pairs if f == '--logdir') if p]
    if prog in FREE_PROGRAMS:
        return []
    if prog not in ('python', 'python3', 'torchrun'):
        return [f'unknown program {prog!r}: show a python/bash command, or teach '
                f'tests/test_docs_commands.py how to check it']
    target, args = _python_target(cmd, state)
    if target is None:
        return ['no script to run']
    if target == '-c':
        try:
            compile(args[0] if args else '', '<python -c>', 'exec')
        except SyntaxError as e:
            return [f'python -c: {e}']
        return []
    if target == '-m':
        return _check_module(args, state)
    problem = state.check_input(target, 'script')
    if problem:
        return [problem]
    script = (state.cwd / target).resolve()
    problems = []
    why = parse_tool(script, args, tmp)
    if why:
        problems.append(why)
    pairs, positional = _option_values(args)
    for flag, value in pairs:
        if flag in OUTPUT_FLAGS:
            continue
        if flag == '--pre_train' and value == 'download':
            continue
        if flag == '--load' or (flag == '--runs' and '/' not in value):
            problem = state.check_input(f'experiment/{value}', flag)
        elif PATH_FLAG.search(flag) or _looks_like_path(value):
            problem = state.check_input(value, flag)
        else:
            continue
        if problem:
            problems.append(problem)
    for value in positional:
        if _looks_like_path(value):
            problem = state.check_input(value, 'argument')
            if problem:
                problems.append(problem)
    for flag, value in pairs:
        if flag == '--save':
            state.make(f'experiment/{value}')
        elif flag in OUTPUT_FLAGS:
            state.make(value)
    if script.name == 'demo.sh':
        pass
    return problems


def _check_module(args, state):
    if not args:
        return ['python -m without a module']
    module, rest = args[0], args[1:]
    if module == 'pytest':
        problems = []
        for tok in rest:
            if tok.startswith('tests/') or tok.endswith('.py') or '::' in tok:
                path = tok.split('::')[0]
                problem = state.check_input(path, 'test file')
                if problem:
                    problems.append(problem)
        return problems
    if module in ('pip', 'venv', 'torch.utils.collect_env'):
        return []
    return [f'python -m {module}: unknown module for this test']


def page_commands():
    out = []
    for page in PAGES:
        items, problems = page_items(page)
        out.append((page, items, problems))
    return out


# ---------------------------------------------------------------------------- tests
@pytest.mark.parametrize('page', PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_page_commands_parse(page, tmp_path, monkeypatch):
    """Each command of the page parses with the real parsers and reads only what exists."""
    monkeypatch.chdir(REPO)
    items, problems = page_items(page)
    state = PageState(page)
    for cmd in items:
        for problem in check_command(cmd, state, tmp_path):
            problems.append(f'{cmd.where()}\n    -> {problem}')
    assert not problems, '\n'.join(problems)


def test_pages_show_commands():
    """The extractor finds commands on the front page (an empty extraction would pass vacuously)."""
    items, _ = page_items(REPO / 'README.md')
    progs = {os.path.basename(c.argv[0]) for c in items}
    assert {'python', 'pip'} <= progs, progs
    assert any('src/main.py' in c.argv for c in items)


def test_extractor_reads_fences_continuations_and_inline_spans(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('Intro `python src/main.py --help` here.\n\n'
                    '```bash\n'
                    'export DATA=/somewhere   # the reader\'s data root\n'
                    'python src/main.py --model EDSR \\\n'
                    '    --dir_data "$DATA" --save a && python src/main.py --load a\n'
                    '# a comment line\n'
                    '```\n\n'
                    '```\n'
                    'python src/main.py --not-a-command-this-is-output\n'
                    '```\n\n'
                    '    python src/main.py --indented\n\n'
                    'python src/main.py --bare-line\n', encoding='utf-8')
    items, problems = page_items(page)
    assert [c.argv for c in items] == [
        ['python', 'src/main.py', '--help'],
        ['export', 'DATA=/somewhere'],
        ['python', 'src/main.py', '--model', 'EDSR', '--dir_data', '$DATA', '--save', 'a'],
        ['python', 'src/main.py', '--load', 'a']]
    assert [c.line for c in items] == [1, 4, 5, 5]
    assert len(problems) == 2 and 'indented' in problems[0] and 'outside' in problems[1]


@pytest.mark.parametrize('text, needle', [
    ('python src/main.py --no_such_flag 1', 'unrecognized arguments: --no_such_flag'),
    ('python src/main.py --template NoSuchTemplate', 'NoSuchTemplate'),
    ('python src/main.py --loss 1*FOO', "unknown loss type 'FOO'"),
    ('python src/main.py --dir_data ../shared --test_only --model Bicubic', "'../shared'"),
    ('python src/main.py --pre_train /path/to/edsr.pt --test_only', "'/path/to/edsr.pt'"),
    ('python src/main.py --dir_demo "$PHOTOS" --data_test Demo', 'never assigns'),
    ('python src/main.py --load never_made', 'not made by an earlier command'),
    ('python src/main.py --data_test Demo --dir_demo my_photos', "'my_photos' does not exist"),
    ('python src/inspect_ssl.py --hr dataset/nothing.png --out a.png', 'does not exist'),
    ('python src/compare.py --runs x --image baby --box 1,2 --out c.png', '--box'),
    ('python bench/ssim_map.py --no_such_bench_flag', 'no flag --no_such_bench_flag'),
    ('python -m pytest tests/test_nothing_here.py', 'does not exist'),
    ('frobnicate --now', 'unknown program'),
])
def test_checker_refuses(text, needle, tmp_path, monkeypatch):
    """The checker catches each kind of stale command (real parsers, real repository)."""
    monkeypatch.chdir(REPO)
    page = tmp_path / 'p.md'
    page.write_text(f'```bash\n{text}\n```\n', encoding='utf-8')
    items, _ = page_items(page)
    state = PageState(page)
    problems = [p for c in items for p in check_command(c, state, tmp_path)]
    assert any(needle in p for p in problems), problems


def test_checker_accepts_what_the_page_makes(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    page = tmp_path / 'p.md'
    page.write_text('```bash\n'
                    'export PHOTOS=~/Pictures\n'
                    'bash demo.sh\n'
                    'python src/main.py --model EDSR --scale 2 --data_test Demo --dir_demo "$PHOTOS" '
                    '--pre_train experiment/demo/model/model_best.pt --test_only --save mine\n'
                    'python src/compare.py --runs demo mine --image baby --box 1,2,3,4 --out c.png\n'
                    'python src/inspect_ssl.py --hr dataset/benchmark/Set5/HR/baby.png --sr '
                    'experiment/mine/results-Demo/baby_x2_SR.png --out c2.png\n'
                    'python -m pytest tests/test_cli.py -k help\n'
                    '```\n', encoding='utf-8')
    items, _ = page_items(page)
    state = PageState(page)
    problems = [p for c in items for p in check_command(c, state, tmp_path)]
    assert problems == []


# ---------------------------------------------------------------------------- running
def _cheap(cmd):
    """(script, argv) of a command cheap enough to run in the slow suite, else None."""
    if os.path.basename(cmd.argv[0]) not in ('python', 'python3'):
        return None
    target, args = _python_target(cmd, None)
    if not target or not target.endswith('.py'):
        return None
    if '--help' in args or '-h' in args:
        return target, args
    if target != 'src/main.py' or '--test_only' not in args:
        return None
    if any(VAR.search(a) for a in args) or any(a in ('--pre_train', '--load', '--dir_data',
                                                     '--dir_demo') for a in args):
        return None
    return target, args


def cheap_commands():
    out = []
    for page, items, _ in page_commands():
        for cmd in items:
            picked = _cheap(cmd)
            if picked:
                out.append(pytest.param(cmd, *picked, id=f'{page.name}:{cmd.line}'))
    return out


@pytest.mark.slow
@pytest.mark.parametrize('cmd, script, args', cheap_commands())
def test_cheap_commands_run(cmd, script, args, tmp_path):
    """--help of every tool shown, and test-only runs on the bundled data, run as shown
    (run folders under a temporary SR_EXPERIMENT_ROOT)."""
    env = dict(os.environ, SR_EXPERIMENT_ROOT=str(tmp_path / 'experiment'))
    env.setdefault('OMP_NUM_THREADS', '2')
    env.update(cmd.env)
    proc = subprocess.run([sys.executable, script, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (cmd.where(), proc.stdout[-2000:], proc.stderr[-2000:])
    if '--help' in args or '-h' in args:
        assert 'usage:' in proc.stdout
    else:
        assert (tmp_path / 'experiment').is_dir() and any((tmp_path / 'experiment').rglob(
            'metrics.json')), proc.stdout[-2000:]


# ---------------------------------------------------------------------------- links
def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def _anchors(page):
    out, inside = set(), False
    for line in page.read_text(encoding='utf-8').splitlines():
        if line.startswith('```'):
            inside = not inside
        elif not inside and line.startswith('#'):
            out.add(_slug(line.lstrip('#')))
    return out


@pytest.mark.parametrize('page', PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_page_links_resolve(page):
    """Links between README.md and docs/ pages (and to images) point at files and headings
    that exist, so moving a section cannot leave a dead link behind."""
    problems = []
    text = re.sub(r'```.*?```', '', page.read_text(encoding='utf-8'), flags=re.S)
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+:', target):
            continue
        path, _, anchor = target.partition('#')
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f'{target}: no file {dest}')
        elif anchor and dest.suffix == '.md' and anchor not in _anchors(dest):
            problems.append(f'{target}: no heading #{anchor} in {dest.name}')
    assert not problems, f'{page.name}: ' + '; '.join(problems)
