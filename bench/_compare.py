"""What the bench scripts share when they time this checkout against a git revision, side by
side in one process: the revision's commit, its files, and the calls run in turn."""
import statistics
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def commit_of(rev):
    """The full sha of git revision rev (a commit, tag or branch); utility.UserError (one
    line, exit status 2 through utility.run_cli) when it names no commit here."""
    import utility

    sha = subprocess.run(['git', 'rev-parse', '--verify', f'{rev}^{{commit}}'], cwd=REPO,
                         capture_output=True, text=True)
    if sha.returncode != 0:
        raise utility.UserError(f'--against: {rev!r} is not a commit of this repository; give a '
                                'commit, tag or branch (git log --oneline lists them)')
    return sha.stdout.strip()


def file_at(sha, path):
    """The bytes of the file at path (from the repository root) in commit sha."""
    return subprocess.run(['git', 'show', f'{sha}:{path}'], cwd=REPO, capture_output=True,
                          check=True).stdout


def interleaved(calls, repeat):
    """Runs calls (name -> function returning a tuple of ms) in turn, repeat + 1 rounds (the
    first warms up and is dropped), so that machine noise hits all alike; the order reverses
    from one round to the next, so that no call always runs first. Returns
    {name: [median of each figure]}."""
    times = {name: [] for name in calls}
    order = list(calls.items())
    for round_ in range(repeat + 1):
        for name, call in (order if round_ % 2 else order[::-1]):
            times[name].append(call())
    return {name: [statistics.median(t[i] for t in v[1:]) for i in range(len(v[0]))]
            for name, v in times.items()}
