"""The behavioural suite's failure rate per capability, with example failures.

    python bench/checklist_report.py [--examples N] [--only CAPABILITY] [--ratchet]

Runs every generated sentence of tests/behaviour through the extractor and prints, for each
capability, the cases by kind (MFT minimum functionality, INV invariance, DIR directional), the
failures, the rate against the ratchet ceiling and the 3% target, then a few failures each.
`--ratchet` lowers the ceilings in tests/behaviour/ceilings.json to today's rates (rounded up).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.behaviour import ceilings, suite  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3, help="failures shown per capability")
    parser.add_argument("--only", help="one capability (its failures in full detail)")
    parser.add_argument("--ratchet", action="store_true", help="lower the ceilings to today")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cases = suite.build()
    built = time.perf_counter()
    results = suite.run(cases)
    ran = time.perf_counter()
    limits = ceilings.load() if ceilings.PATH.exists() else {}
    print(
        f"{len(cases)} sentences ({built - started:.1f} s to generate, "
        f"{(ran - built) * 1000 / max(1, len(cases)):.2f} ms each to extract)"
    )
    print(f"{'capability':<24} {'tests':<20} {'fail':>5} {'rate':>7} {'ceiling':>8}  target<3%")
    over = 0
    for cap, out in results.items():
        kinds = " ".join(f"{k}:{v}" for k, v in sorted(out.tests.items()))
        ceiling = limits.get(cap)
        shown = f"{ceiling:.0%}" if ceiling is not None else "-"
        ok = "yes" if out.rate < ceilings.TARGET else "no"
        over += out.rate >= ceilings.TARGET
        print(f"{cap:<24} {kinds:<20} {len(out.failures):5d} {out.rate:7.1%} {shown:>8}  {ok}")
    print(f"capabilities at or over the 3% target: {over} of {len(results)}")
    for cap, out in results.items():
        if args.only and cap != args.only:
            continue
        n = len(out.failures) if args.only else args.examples
        for case, got in out.failures[:n]:
            want = case.expect or "(same as the group's first sentence)"
            print(f"  [{cap} {case.test}] {case.text}\n      want {want}\n      got  {got}")
    if args.ratchet:
        new = ceilings.ratchet({cap: out.rate for cap, out in results.items()})
        print(f"ceilings written to {ceilings.PATH.relative_to(REPO)} ({len(new)} capabilities)")


if __name__ == "__main__":
    main()
