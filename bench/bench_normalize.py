"""Time normalize() per 5 KB of article text, on the seed articles and a synthetic mix.

    python bench/bench_normalize.py [--rounds N]

Prints milliseconds per 5 KB article on one core after warm-up, as thread CPU time (stable
on a loaded machine) and wall time (the first call builds the
gazetteer and compiles the patterns; that one-off cost is printed apart). Target: < 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.extract.normalize import normalize  # noqa: E402
from monitor.watches import load_watch  # noqa: E402

SEEDS = REPO / "seeds"
WATCH = REPO / "rules" / "watches" / "nagorno-karabakh.yaml"
SIZE = 5 * 1024


def articles() -> dict[str, str]:
    """Each seed cut or repeated to 5 KB, plus a 5 KB slice of all seeds interleaved."""
    texts = {p.stem: p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))}
    if not texts:
        raise SystemExit(f"bench_normalize: no seed articles in {SEEDS}")
    out = {name: _fit(text) for name, text in texts.items()}
    paragraphs = [p for t in texts.values() for p in t.split("\n\n") if p.strip()]
    mixed = "\n\n".join(paragraphs[i] for i in range(0, len(paragraphs), 2))
    out["synthetic-mix"] = _fit(mixed + "\n\n" + "\n\n".join(paragraphs[1::2]))
    return out


def _fit(text: str) -> str:
    while len(text) < SIZE:
        text = text + "\n\n" + text
    cut = text.rfind(" ", 0, SIZE)
    return text[: cut if cut > 0 else SIZE]


def calibration_ms() -> float:
    """A fixed pure-Python loop, timed, so that figures from different machines compare
    (about 30-50 ms on a current desktop core)."""
    started = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args(argv)
    watch = load_watch(WATCH) if WATCH.is_file() else None
    docs = articles()
    started = time.perf_counter()
    normalize("Warm-up: 3 soldiers were killed.", watch)
    first = (time.perf_counter() - started) * 1000
    print(f"first call (gazetteer and patterns built): {first:.1f} ms")
    print(f"calibration (1M-iteration Python loop): {calibration_ms():.0f} ms")
    for doc in docs.values():
        normalize(doc, watch)
    for name, doc in docs.items():
        wall: list[float] = []
        cpu: list[float] = []
        for _ in range(args.rounds):
            w0, c0 = time.perf_counter(), time.thread_time()
            normalize(doc, watch)
            cpu.append((time.thread_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
        facts = len(normalize(doc, watch).facts)
        print(
            f"{name:<24} {len(doc):5d} chars  cpu median {statistics.median(cpu):6.2f} ms  "
            f"wall median {statistics.median(wall):6.2f} ms  ({facts} facts)"
        )


if __name__ == "__main__":
    main()
