"""Time normalize() on hostile single-line texts, and show that the cost grows linearly.

    python bench/bench_extract_hostile.py [--mb 5]

Each text is one line with no sentence end, built by repeating a short unit ("Russian jets
shot down ", "Iran backs Russia ", ...) to the given size, read for a two-party watch. For
each unit it prints thread CPU and wall seconds for the full text (normalize reads at most
`MAX_TEXT` characters of it) and for the unit repeated to 1/4, 1/2 and the whole of
`MAX_TEXT`, so that doubling the text can be seen to double the time (before the sentence
bound it quadrupled: 113 s for 5 MB of "jets shot down"). Target: a 5 MB line under 5 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.extract.normalize import MAX_TEXT, Budget, normalize  # noqa: E402
from monitor.watches import Party, Watch  # noqa: E402

WATCH = Watch(
    id="bench",
    name="bench",
    parties={
        "RUS": Party(name="Russia", aliases=["Russian", "Moscow"]),
        "UKR": Party(name="Ukraine", aliases=["Ukrainian", "Kyiv"]),
    },
)
UNITS = [
    "Russian jets shot down ",
    "Iran backs ",
    "Iran backs Russia ",
    "Iran-backed ",
    "5 soldiers were killed and ",
    "the death toll rose to 5 ",
    "peacekeepers from Turkey ",
    "a truce brokered by Turkey was violated ",
    "!",
    ".",
    "9",
]


def timed(text: str) -> tuple[float, float, int, str | None]:
    w0, c0 = time.perf_counter(), time.thread_time()
    found = normalize(text, WATCH, Budget(float("inf")))
    return time.thread_time() - c0, time.perf_counter() - w0, len(found.facts), found.failed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=5.0)
    args = parser.parse_args(argv)
    size = int(args.mb * 1024 * 1024)
    normalize("Warm-up: 3 soldiers were killed.", WATCH)
    print(f"one line of {size:,} characters (normalize reads the first {MAX_TEXT:,})")
    print(f"{'unit':<42} {'cpu s':>7} {'wall s':>7}  cpu s at 1/4, 1/2, 1 x MAX_TEXT")
    worst = 0.0
    for unit in UNITS:
        cpu, wall, _, failed = timed(unit * (size // len(unit)))
        worst = max(worst, wall)
        steps = [timed(unit * (MAX_TEXT // k // len(unit)))[0] for k in (4, 2, 1)]
        growth = ", ".join(f"{s:.2f}" for s in steps)
        note = f"  FAILED: {failed}" if failed else ""
        print(f"{unit!r:<42} {cpu:7.2f} {wall:7.2f}  {growth}{note}")
    print(f"slowest: {worst:.2f} s wall (target < 5 s)")


if __name__ == "__main__":
    main()
