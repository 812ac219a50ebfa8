"""The `monitor` command run in this test's process, for tests of what a command prints and
returns. A subprocess pays ~2 s of imports per command, far more than most commands take;
here they are paid once. The real process stays covered where it is the point: the console
script and `python -m monitor.cli` in test_e2e, test_cli_startup and the daemon tests."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess

from monitor.cli import main
from monitor.logs import QUIETENED
from tests.conftest import ROOT


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``monitor ARGS`` as the console script runs it: from the repository root, without
    MONITOR_CONFIG, main's return (or the SystemExit argparse raises) as the exit status, and
    stdout and stderr (the log lines included) as text. An exception main does not turn into
    a status propagates, so the test fails with its traceback. The logging main sets up is
    undone on return."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in QUIETENED}
    config = os.environ.pop("MONITOR_CONFIG", None)
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        os.chdir(cwd)
        if config is not None:
            os.environ["MONITOR_CONFIG"] = config
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, was in quiet.items():
            logging.getLogger(name).setLevel(was)
    return subprocess.CompletedProcess(["monitor", *args], code, out.getvalue(), err.getvalue())
