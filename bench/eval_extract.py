"""Score the event extractor against the shared evaluation data.

    python bench/eval_extract.py [SHARED_DIR] [--failures N] [--only devset|acled|plover]

SHARED_DIR defaults to ../shared relative to the repository and must hold eval/devset.jsonl,
eval/acled-2020-05.csv and eval/plover-gsr.json (third-party data: read in place, never
copied into the project). Scoring follows eval/README.md:

- devset: per passage, casualties as the multiset of (outcome, count) over non-historical
  reports with a count (an event's increment is its own pair); third parties as the set of
  actor codes; ceasefires as the set of statuses; downings as the set of assets. Precision,
  recall and F1 are summed over passages; negative passages report how many got any event.
- ACLED: rows grouped by identical notes (fatalities summed); the passage-level killed count
  is the sum over non-cumulative, non-historical, non-subset killed reports (vague words at
  their ACLED reading). Notes with coders' remarks ("coded as", "split") are scored apart.
- PLOVER: actor coding accuracy of actor texts with a state code, and the share of AGREE,
  CONSULT and AID sentences that yield a ceasefire, diplomacy or third-party fact.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.events import Casualties, Ceasefire, Downing, ThirdParty  # noqa: E402
from monitor.extract.gazetteer import find_mentions  # noqa: E402
from monitor.extract.normalize import extract  # noqa: E402
from monitor.watches import Party, Watch  # noqa: E402

TYPES = ("casualties", "third_parties", "ceasefire", "downings")
# PLOVER (CAMEO heritage) spells a few states differently from ISO 3166-1.
PLOVER_CODES = {"JAP": "JPN", "ITL": "ITA", "ROM": "ROU", "DRC": "COD", "GER": "DEU"}
NON_STATE = {"IGO", "NGO", "IMG", "MNC", "REB", "GOV", "MIL", "UNK", ""}


def die(msg: str) -> None:
    print(f"eval_extract: {msg}", file=sys.stderr)
    raise SystemExit(2)


# --- devset ---------------------------------------------------------------------------------------


def watch_for(item: dict) -> Watch:
    parties = {
        code: Party(name=p.get("name", code), aliases=p.get("aliases", []))
        for code, p in item["parties"].items()
    }
    wid = "".join(c if c.isalnum() else "-" for c in item.get("conflict", "x").lower()) or "x"
    return Watch(id=wid, name=item.get("conflict", wid), parties=parties)


def predicted(facts: list) -> dict[str, Counter]:
    out = {t: Counter() for t in TYPES}
    for f in facts:
        if isinstance(f, Casualties) and not f.historical:
            if f.count is not None:
                out["casualties"][(f.outcome, f.count)] += 1
            if f.increment is not None:
                out["casualties"][(f.outcome, f.increment)] += 1
        elif isinstance(f, ThirdParty):
            out["third_parties"][f.actor] = 1
        elif isinstance(f, Ceasefire):
            out["ceasefire"][f.status] = 1
        elif isinstance(f, Downing):
            out["downings"][f.asset] = 1
    return out


def expected(gold: dict) -> dict[str, Counter]:
    out = {t: Counter() for t in TYPES}
    for c in gold.get("casualties", []):
        if not c.get("historical") and c.get("count") is not None:
            out["casualties"][(c["outcome"], c["count"])] += 1
    for t in gold.get("third_parties", []):
        out["third_parties"][t["actor"]] = 1
    for c in gold.get("ceasefire", []):
        out["ceasefire"][c["status"]] = 1
    for d in gold.get("downings", []):
        out["downings"][d["asset"]] = 1
    return out


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def eval_devset(path: Path, show: int) -> None:
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    totals = {t: [0, 0, 0] for t in TYPES}
    failures: list[str] = []
    negatives = negatives_hit = 0
    started = time.perf_counter()
    for item in items:
        facts = extract(item["text"], watch_for(item))
        got, want = predicted(facts), expected(item["gold"])
        if not any(item["gold"].get(t) for t in TYPES):
            negatives += 1
            negatives_hit += any(got[t] for t in TYPES)
        for t in TYPES:
            tp = sum((got[t] & want[t]).values())
            fp = sum((got[t] - want[t]).values())
            fn = sum((want[t] - got[t]).values())
            totals[t][0] += tp
            totals[t][1] += fp
            totals[t][2] += fn
            if fp or fn:
                failures.append(
                    f"  {item['id']} {t}: expected {sorted(want[t].elements())} "
                    f"got {sorted(got[t].elements())}"
                )
    elapsed = (time.perf_counter() - started) * 1000 / max(1, len(items))
    print(f"devset: {len(items)} passages ({elapsed:.2f} ms each)")
    print(f"  {'type':<14} {'P':>6} {'R':>6} {'F1':>6}   tp  fp  fn")
    for t in TYPES:
        tp, fp, fn = totals[t]
        p, r, f = prf(tp, fp, fn)
        print(f"  {t:<14} {p:6.3f} {r:6.3f} {f:6.3f}  {tp:3d} {fp:3d} {fn:3d}")
    print(f"  negative passages with any event: {negatives_hit}/{negatives}")
    print(f"  failures ({len(failures)}):")
    for line in failures[:show]:
        print(line)


# --- ACLED ----------------------------------------------------------------------------------------


def passage_killed(facts: Iterable) -> int:
    total = 0
    for f in facts:
        if not isinstance(f, Casualties) or f.outcome != "killed":
            continue
        if f.cumulative or f.historical or f.subset:
            continue
        total += f.count if f.count is not None else (f.acled_count or 0)
    return total


def eval_acled(path: Path, show: int) -> None:
    groups: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            value = (row.get("fatalities") or "").strip()
            if not value.isdigit():
                continue
            groups[row["notes"]] = groups.get(row["notes"], 0) + int(value)
    clean = {n: f for n, f in groups.items() if not _remark(n)}
    remarks = {n: f for n, f in groups.items() if _remark(n)}
    started = time.perf_counter()
    results = [(n, f, passage_killed(extract(n))) for n, f in clean.items()]
    elapsed = (time.perf_counter() - started) * 1000 / max(1, len(results))
    with_deaths = [r for r in results if r[1] > 0]
    without = [r for r in results if r[1] == 0]
    exact = sum(1 for _, f, p in with_deaths if p == f)
    alarms = [r for r in without if r[2] > 0]
    print(f"ACLED: {len(groups)} grouped notes, {len(clean)} scored ({elapsed:.2f} ms each)")
    print(
        f"  passages with deaths: {len(with_deaths)}, exact killed count: "
        f"{exact}/{len(with_deaths)} = {exact / max(1, len(with_deaths)):.1%}"
    )
    print(
        f"  passages without deaths: {len(without)}, false alarms: "
        f"{len(alarms)}/{len(without)} = {len(alarms) / max(1, len(without)):.1%}"
    )
    kinds = Counter(_kind(f, p) for _, f, p in with_deaths if p != f)
    print(
        "  failure kinds (passages with deaths): "
        + ", ".join(f"{k} {v}" for k, v in kinds.most_common())
    )
    rem = [(n, f, passage_killed(extract(n))) for n, f in remarks.items()]
    rem_pos = [r for r in rem if r[1] > 0]
    rem_exact = sum(1 for _, f, p in rem_pos if p == f)
    print(f"  notes with coders' remarks (apart): exact {rem_exact}/{len(rem_pos)}")
    misses = [r for r in with_deaths if r[2] != r[1]]
    for n, f, p in misses[:show]:
        print(f"  miss gold={f} got={p}: {n[:300]}")
    for n, _, p in alarms[:show]:
        print(f"  alarm got={p}: {n[:300]}")


def _remark(notes: str) -> bool:
    low = notes.lower()
    return "coded as" in low or "split" in low


def _kind(gold: int, got: int) -> str:
    if got == 0:
        return "missed"
    return "over" if got > gold else "under"


# --- PLOVER ---------------------------------------------------------------------------------------


def eval_plover(path: Path, show: int) -> None:
    records = json.loads(path.read_text(encoding="utf-8"))
    right = total = igo_right = igo_total = resolved = 0
    wrong: list[str] = []
    categories: dict[str, list[int]] = {"AGREE": [0, 0], "CONSULT": [0, 0], "AID": [0, 0]}
    for rec in records:
        if not isinstance(rec, dict):
            continue
        for role in ("source", "target"):
            actors = rec.get(role)
            if not isinstance(actors, list):
                continue
            for actor in actors:
                if not isinstance(actor, dict) or not actor.get("actorText"):
                    continue
                code = PLOVER_CODES.get(actor.get("code") or "", actor.get("code") or "")
                got = [m for m in find_mentions(actor["actorText"]) if m.is_actor]
                if code == "IGO":
                    igo_total += 1
                    igo_right += any(m.kind == "igo" for m in got)
                elif len(code) == 3 and code.isalpha() and code not in NON_STATE:
                    total += 1
                    first = got[0].code if got else None
                    resolved += first is not None
                    if first == code:
                        right += 1
                    else:
                        wrong.append(f"  {actor['actorText']!r}: expected {code}, got {first}")
        event = rec.get("event")
        if event in categories and rec.get("text"):
            categories[event][1] += 1
            facts = extract(rec["text"])
            categories[event][0] += any(f.type in ("ceasefire", "diplomacy") for f in facts)
    print(
        f"PLOVER: state actor coding {right}/{total} = {right / max(1, total):.1%} "
        f"(coded {resolved}/{total}, right when coded {right / max(1, resolved):.1%}); "
        f"IGO recognised {igo_right}/{igo_total}"
    )
    for event, (hit, n) in categories.items():
        print(f"  {event}: {hit}/{n} sentences yield a ceasefire or diplomacy fact")
    for line in wrong[:show]:
        print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shared", nargs="?", default=str(REPO.parent / "shared"))
    parser.add_argument("--failures", type=int, default=200, help="failures to print per set")
    parser.add_argument("--only", choices=("devset", "acled", "plover"))
    args = parser.parse_args(argv)
    folder = Path(args.shared) / "eval"
    if not folder.is_dir():
        die(f"no eval folder at {folder}: pass the path to the shared folder")
    files = {
        "devset": folder / "devset.jsonl",
        "acled": folder / "acled-2020-05.csv",
        "plover": folder / "plover-gsr.json",
    }
    for name, file in files.items():
        if args.only in (None, name) and not file.is_file():
            die(f"missing {file}")
    if args.only in (None, "devset"):
        eval_devset(files["devset"], args.failures)
    if args.only in (None, "acled"):
        eval_acled(files["acled"], args.failures)
    if args.only in (None, "plover"):
        eval_plover(files["plover"], args.failures)


if __name__ == "__main__":
    main()
