"""pytest plugin for .ci/run: records what a run did not run.

Writes to the file named by $CI_UNRUN, one pytest argument a line, every test the run
deselected (the `slow` ones that pytest.ini leaves out) or skipped (an optional package,
CUDA, ../shared absent), and every test file skipped whole at import.  .ci/run hands that
file to a second pytest run (`@file`), after the optional packages are installed, so the
two runs together run every test once.
"""
import os
from pathlib import Path

_UNRUN = []


def pytest_deselected(items):
    _UNRUN.extend(item.nodeid for item in items)


def pytest_collectreport(report):
    if report.skipped:                       # a module-level skip: the whole file
        _UNRUN.append(report.nodeid)


def pytest_runtest_logreport(report):
    # An xfail is also reported as skipped; it ran.
    if report.skipped and not hasattr(report, 'wasxfail'):
        _UNRUN.append(report.nodeid)


def pytest_sessionfinish(session):
    Path(os.environ['CI_UNRUN']).write_text(''.join(f'{n}\n' for n in dict.fromkeys(_UNRUN)))
