"""Time normalize() per 5 KB article: the seed articles, a synthetic mix and the dev set.

    python bench/bench_normalize.py [--rounds N]
    python bench/bench_normalize.py --against ../main-checkout [--runs 7]

Prints milliseconds per 5 KB article on one core after warm-up, as thread CPU time (stable
on a loaded machine) and wall time (the first call builds the gazetteer and compiles the
patterns; that one-off cost is printed apart). Where ../shared/eval/devset.jsonl is present,
also the milliseconds per dev-set passage (1-4 sentences of conflict news, each with its own
watch). Target: < 5 ms.

`--against DIR` compares with another checkout (e.g. `git worktree add /tmp/main main`): this
script runs for it and for this one by turns, in fresh processes, `--runs` times each, and
prints each text's best CPU time on both sides and their ratio. Machines shared with other
work make single figures noisy; runs side by side and by turns are what can be compared.
It then compares every fact both sides read (all fields, quote and span included) from the
seed articles (whole and cut), every dev-set passage (with its watch and with none), the
behavioural suite's generated sentences and the tuning half of the ACLED notes, and prints
"every fact unchanged" or each text that differs: a change made for speed must not change
what is read. `--runs 0` compares the facts alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
WATCH = REPO / "rules" / "watches" / "nagorno-karabakh.yaml"
DEVSET = REPO.parent / "shared" / "eval" / "devset.jsonl"
ACLED = REPO.parent / "shared" / "eval" / "acled-2020-05.csv"
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


def dev_passages() -> list[tuple[str, dict]]:
    """The dev set's passages with their parties (empty where ../shared is absent)."""
    if not DEVSET.is_file():
        return []
    items = [json.loads(line) for line in DEVSET.read_text(encoding="utf-8").splitlines() if line]
    return [(item["text"], item) for item in items]


def fact_texts() -> list[tuple[str, str, object, object]]:
    """(key, text, watch, published) of every text whose facts must not change: the seeds
    whole and cut to 5 KB, the dev set with its watch, with none and with the article's
    date, the behavioural suite's sentences with their watches, and the ACLED notes of the
    tuning half (the validation half stays unread here too)."""
    from datetime import datetime

    from monitor.watches import load_watch

    sys.path.insert(1, str(REPO))  # the suite and the split rule: this checkout's, on both sides
    from bench.eval_extract import half_of, watch_for
    from tests.behaviour.suite import build, watch_of

    watch = load_watch(WATCH) if WATCH.is_file() else None
    out: list[tuple[str, str, object, object]] = []
    for p in sorted(SEEDS.glob("*.txt")):
        text = p.read_text(encoding="utf-8")
        out += [(f"seed {p.stem}", text, watch, None), (f"seed {p.stem} bare", text, None, None)]
    out += [(f"5 KB {name}", text, watch, None) for name, text in articles().items()]
    for text, item in dev_passages():
        when = datetime.fromisoformat(item["published"]) if item.get("published") else None
        out += [
            (f"dev {item['id']}", text, watch_for(item), None),
            (f"dev {item['id']} dated", text, watch_for(item), when),
            (f"dev {item['id']} bare", text, None, None),
        ]
    for n, case in enumerate(build()):
        w = watch_of(case.watch) if case.watch is not None else None
        out.append((f"suite {n} {case.capability}", case.text, w, None))
    if ACLED.is_file():
        with ACLED.open(encoding="utf-8", newline="") as fh:
            notes = {r["notes"]: r.get("country") or "" for r in csv.DictReader(fh)}
        out += [
            (f"acled {n}", note, None, None)
            for n, (note, country) in enumerate(notes.items())
            if half_of(country) == "tuning"
        ]
    return out


def fact_dump(repo: Path) -> dict[str, list]:
    """Every fact of every text of `fact_texts`, as JSON, read by the `monitor` of `repo`."""
    sys.path.insert(0, str(repo))
    from monitor.extract.normalize import extract

    return {
        key: [f.model_dump(mode="json") for f in extract(text, w, published)]  # type: ignore[arg-type]
        for key, text, w, published in fact_texts()
    }


def compare_facts(other: Path) -> None:
    """Print whether this checkout reads exactly the facts `other` reads."""
    dumps = {}
    for side, repo in (("this", REPO), ("other", other)):
        done = subprocess.run(
            [sys.executable, __file__, "--repo", str(repo), "--facts"],
            capture_output=True,
            text=True,
            check=True,
        )
        dumps[side] = json.loads(done.stdout)
    ours, theirs = dumps["this"], dumps["other"]
    differ = [key for key in theirs if ours.get(key) != theirs[key]]
    facts = sum(len(v) for v in theirs.values())
    if not differ and ours.keys() == theirs.keys():
        print(f"every fact unchanged: {len(theirs)} texts, {facts} facts")
        return
    print(f"FACTS CHANGED in {len(differ)} of {len(theirs)} texts ({facts} facts before):")
    for key in differ[:20]:
        print(f"  {key}:\n    before {theirs[key]}\n    after  {ours.get(key)}")
    raise SystemExit(1)


def measure(repo: Path, rounds: int) -> dict[str, dict[str, float]]:
    """Best and median CPU ms of each text (and the dev set per passage), and the median
    wall ms, normalized by the `monitor` package of `repo`."""
    sys.path.insert(0, str(repo))
    from monitor.extract.normalize import normalize
    from monitor.watches import Party, Watch, load_watch

    watch = load_watch(WATCH) if WATCH.is_file() else None
    docs = {name: [(text, watch)] for name, text in articles().items()}
    dev = [
        (
            text,
            Watch(
                id="dev",
                name=item.get("conflict", "dev"),
                parties={
                    code: Party(name=p.get("name", code), aliases=p.get("aliases", []))
                    for code, p in item["parties"].items()
                },
            ),
        )
        for text, item in dev_passages()
    ]
    if dev:
        docs["dev set (per passage)"] = dev
    for batch in docs.values():
        for text, w in batch:
            normalize(text, w)
    out: dict[str, dict[str, float]] = {}
    for name, batch in docs.items():
        cpu: list[float] = []
        wall: list[float] = []
        for _ in range(rounds if len(batch) == 1 else max(1, rounds // 20)):
            w0, c0 = time.perf_counter(), time.thread_time()
            for text, w in batch:
                normalize(text, w)
            cpu.append((time.thread_time() - c0) * 1000 / len(batch))
            wall.append((time.perf_counter() - w0) * 1000 / len(batch))
        facts = sum(len(normalize(text, w).facts) for text, w in batch)
        out[name] = {
            "chars": sum(len(text) for text, _ in batch) / len(batch),
            "cpu_best": min(cpu),
            "cpu_median": statistics.median(cpu),
            "wall_median": statistics.median(wall),
            "facts": facts,
        }
    return out


def compare(other: Path, runs: int, rounds: int) -> None:
    """This checkout against `other`, by turns in fresh processes; best CPU time of each."""
    best: dict[str, dict[str, float]] = {"this": {}, "other": {}}
    for n in range(runs):
        order = [("this", REPO), ("other", other)]
        for side, repo in order if n % 2 == 0 else order[::-1]:
            done = subprocess.run(
                [sys.executable, __file__, "--repo", str(repo), "--rounds", str(rounds), "--json"],
                capture_output=True,
                text=True,
                check=True,
            )
            for name, row in json.loads(done.stdout).items():
                best[side][name] = min(best[side].get(name, float("inf")), row["cpu_best"])
    if runs:
        print(f"best CPU ms over {runs} runs each, by turns: this checkout against {other}")
    for name, ours in best["this"].items():
        theirs = best["other"].get(name)
        if theirs:
            print(f"{name:<24} {theirs:7.3f} ms -> {ours:7.3f} ms   ratio {ours / theirs:.2f}")
    compare_facts(other)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--runs", type=int, default=7, help="runs of each side (--against)")
    parser.add_argument("--repo", type=Path, default=REPO, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--facts", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.against:
        compare(args.against.resolve(), args.runs, args.rounds)
        return
    if args.json:
        print(json.dumps(measure(args.repo, args.rounds)))
        return
    if args.facts:
        print(json.dumps(fact_dump(args.repo)))
        return
    sys.path.insert(0, str(args.repo))
    from monitor.extract.normalize import normalize

    started = time.perf_counter()
    normalize("Warm-up: 3 soldiers were killed.")
    first = (time.perf_counter() - started) * 1000
    print(f"first call (gazetteer and patterns built): {first:.1f} ms")
    print(f"calibration (1M-iteration Python loop): {calibration_ms():.0f} ms")
    for name, row in measure(args.repo, args.rounds).items():
        print(
            f"{name:<24} {row['chars']:5.0f} chars  cpu median {row['cpu_median']:6.2f} ms  "
            f"best {row['cpu_best']:6.2f} ms  wall median {row['wall_median']:6.2f} ms  "
            f"({row['facts']:.0f} facts)"
        )


if __name__ == "__main__":
    main()
