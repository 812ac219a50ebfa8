"""Run every benchmark in this folder, one after another, each in its own process. Run by hand:

    .venv/bin/python bench/run_all.py [--only NAME ...] [--skip NAME ...]

A benchmark is any ``bench/*.py`` module with a ``__main__`` block; it runs with its own
defaults, so its figures are the ones the README quotes. Each one's output is shown as it runs;
a failing benchmark is reported in the summary and does not stop the others.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def benchmarks() -> list[str]:
    """Module names of every runnable benchmark, in name order."""
    names = []
    for path in sorted(BENCH.glob("*.py")):
        if path.stem in ("__init__", "run_all"):
            continue
        if 'if __name__ == "__main__":' in path.read_text():
            names.append(path.stem)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="run just this one")
    parser.add_argument("--skip", action="append", default=[], help="leave this one out")
    args = parser.parse_args(argv)
    names = [n for n in benchmarks() if (not args.only or n in args.only) and n not in args.skip]
    unknown = set(args.only + args.skip) - set(benchmarks())
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
    results: list[tuple[str, int, float]] = []
    for name in names:
        print(f"\n=== bench.{name}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"bench.{name}"], cwd=REPO)
        results.append((name, code, time.perf_counter() - started))
    print("\n=== summary")
    for name, code, seconds in results:
        print(f"{name:<24} {'ok' if code == 0 else f'FAILED (exit {code})':<18} {seconds:7.1f} s")
    return 1 if any(code for _, code, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
