"""Benchmark: how long light ``monitor`` commands take from exec to exit.

    .venv/bin/python bench/bench_startup.py [--runs 10]

Runs ``monitor --help``, ``monitor status`` (on a SQLite database with the schema and one
feed), ``monitor rules check rules`` and ``monitor extract`` on a seed article, each ``--runs``
times, and ``python -c pass`` as many times as a baseline. The runs
are interleaved (one of each per round), so load from other processes on a shared machine
falls on every command alike. Prints each command's median wall time and its ratio to the
baseline's median: start-up is mostly imports, and the ratio says how much of it is ours.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def monitor_command() -> list[str]:
    """The installed ``monitor`` script beside this interpreter, as a user runs it."""
    script = Path(sys.executable).with_name("monitor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor.cli"]


def status_config(workdir: Path) -> Path:
    """A config whose database holds the schema, for `monitor status` to read."""
    from monitor.store.log import EventStore

    db = workdir / "monitor.db"
    EventStore(f"sqlite:///{db}").close()
    config = workdir / "config.toml"
    config.write_text(
        f'db = "sqlite:///{db}"\nhttp_listen = ""\n'
        '[[feeds]]\nname = "a"\nurl = "http://127.0.0.1:9/feed.xml"\n',
        encoding="utf-8",
    )
    return config


def commands(workdir: Path) -> dict[str, list[str]]:
    monitor = monitor_command()
    seed = min(REPO.glob("seeds/*.txt"))
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "monitor --help": [*monitor, "--help"],
        "monitor status": [*monitor, "status", "--config", str(status_config(workdir))],
        "monitor rules check rules": [*monitor, "rules", "check", "rules"],
        f"monitor extract {seed.relative_to(REPO)}": [*monitor, "extract", str(seed)],
    }


# Compiled modules are cached as for an installed package (and its first, untimed run below
# writes the cache): where PYTHONDONTWRITEBYTECODE is set, every run would compile our
# modules from source again, which no user's command does.
AS_INSTALLED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall_time(argv: list[str]) -> float:
    """Seconds from start to exit; a command that fails stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, env=AS_INSTALLED)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace")
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{err}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        return report(commands(Path(workdir)), args.runs)


def report(todo: dict[str, list[str]], runs: int) -> int:
    times: dict[str, list[float]] = {name: [] for name in todo}
    for argv in todo.values():  # one untimed run each: the page cache is warm for all
        wall_time(argv)
    for _ in range(runs):
        for name, argv in todo.items():
            times[name].append(wall_time(argv))
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<50} {'median s':>9} {'min s':>7} {'x python':>9}")
    for name, took in times.items():
        median = statistics.median(took)
        print(f"{name:<50} {median:>9.3f} {min(took):>7.3f} {median / base:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
