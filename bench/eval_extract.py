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
- Generalisation: ACLED is split by country and the dev set by conflict into a tuning and a
  validation half (see `half_of`: the CRC-32 of the name, even or odd). Both halves are
  printed side by side; failures are printed for the tuning half only, so that changes are
  guided by it and the validation half stays unseen.
- PLOVER: actor coding accuracy of actor texts with a state code, and the share of AGREE,
  CONSULT and AID sentences that yield a ceasefire, diplomacy or third-party fact.
- pages (the text stage, HTML to main text): trafilatura's own evaluation pages in
  SHARED_DIR/peer/trafilatura, each with snippets a good extraction holds ("with") and
  boilerplate it must leave out ("without"), read by `article_text` as the workers read
  pages. The dev set is text, so this is what judges a change to how pages are read.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.events import Casualties, Ceasefire, Downing, ThirdParty  # noqa: E402
from monitor.extract.gazetteer import find_mentions  # noqa: E402
from monitor.extract.normalize import extract  # noqa: E402
from monitor.extract.text import TextError, article_text  # noqa: E402
from monitor.watches import Party, Watch  # noqa: E402

TYPES = ("casualties", "third_parties", "ceasefire", "downings")
HALVES = ("tuning", "validation", "all")
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


def half_of(name: str) -> str:
    """The fixed split: a country (ACLED) or conflict (dev set) whose name's CRC-32 (UTF-8) is
    even is in the tuning half, odd in the validation half. Look only at tuning failures;
    validation shows whether a change learnt the language or fitted the examples."""
    return "tuning" if zlib.crc32(name.encode("utf-8")) % 2 == 0 else "validation"


def eval_devset(path: Path, show: int) -> None:
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    totals = {h: {t: [0, 0, 0] for t in TYPES} for h in HALVES}
    failures: list[str] = []
    negatives = dict.fromkeys(HALVES, 0)
    negatives_hit = dict.fromkeys(HALVES, 0)
    passages = dict.fromkeys(HALVES, 0)
    started = time.perf_counter()
    for item in items:
        half = half_of(item.get("conflict", ""))
        passages[half] += 1
        facts = extract(item["text"], watch_for(item))
        got, want = predicted(facts), expected(item["gold"])
        if not any(item["gold"].get(t) for t in TYPES):
            negatives[half] += 1
            negatives_hit[half] += any(got[t] for t in TYPES)
        for t in TYPES:
            tp = sum((got[t] & want[t]).values())
            fp = sum((got[t] - want[t]).values())
            fn = sum((want[t] - got[t]).values())
            for row in (totals[half][t], totals["all"][t]):
                row[0] += tp
                row[1] += fp
                row[2] += fn
            if (fp or fn) and half == "tuning":
                failures.append(
                    f"  {item['id']} {t}: expected {sorted(want[t].elements())} "
                    f"got {sorted(got[t].elements())}"
                )
    passages["all"] = len(items)
    negatives["all"] = negatives["tuning"] + negatives["validation"]
    negatives_hit["all"] = negatives_hit["tuning"] + negatives_hit["validation"]
    elapsed = (time.perf_counter() - started) * 1000 / max(1, len(items))
    print(f"devset: {len(items)} passages ({elapsed:.2f} ms each), split by conflict")
    print(f"  {'F1 (P/R)':<14}" + "".join(f" {f'{h} ({passages[h]})':>20}" for h in HALVES))
    for t in TYPES:
        cells = []
        for h in HALVES:
            tp, fp, fn = totals[h][t]
            p, r, f = prf(tp, fp, fn)
            cells.append(f"{f:.3f} ({p:.2f}/{r:.2f})")
        print(f"  {t:<14}" + "".join(f" {c:>20}" for c in cells))
    print(
        f"  {'negatives hit':<14}"
        + "".join(f" {f'{negatives_hit[h]}/{negatives[h]}':>20}" for h in HALVES)
    )
    print(f"  failures in the tuning half ({len(failures)}):")
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
    country: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            value = (row.get("fatalities") or "").strip()
            if not value.isdigit():
                continue
            groups[row["notes"]] = groups.get(row["notes"], 0) + int(value)
            country.setdefault(row["notes"], row.get("country") or "")
    clean = {n: f for n, f in groups.items() if not _remark(n)}
    remarks = {n: f for n, f in groups.items() if _remark(n)}
    started = time.perf_counter()
    results = [(n, f, passage_killed(extract(n))) for n, f in clean.items()]
    elapsed = (time.perf_counter() - started) * 1000 / max(1, len(results))
    by_half = {h: [r for r in results if h == "all" or half_of(country[r[0]]) == h] for h in HALVES}
    print(
        f"ACLED: {len(groups)} grouped notes, {len(clean)} scored ({elapsed:.2f} ms each), "
        "split by country"
    )
    print(f"  {'':<26}" + "".join(f" {h:>16}" for h in HALVES))
    exact_row, alarm_row, kinds_row = [], [], []
    for h in HALVES:
        with_deaths = [r for r in by_half[h] if r[1] > 0]
        without = [r for r in by_half[h] if r[1] == 0]
        exact = sum(1 for _, f, p in with_deaths if p == f)
        alarms = sum(1 for r in without if r[2] > 0)
        exact_row.append(f"{exact}/{len(with_deaths)} {exact / max(1, len(with_deaths)):.1%}")
        alarm_row.append(f"{alarms}/{len(without)} {alarms / max(1, len(without)):.1%}")
        kinds = Counter(_kind(f, p) for _, f, p in with_deaths if p != f)
        kinds_row.append("/".join(str(kinds[k]) for k in ("missed", "under", "over")))
    print(f"  {'exact killed count':<26}" + "".join(f" {c:>16}" for c in exact_row))
    print(f"  {'false alarms (no deaths)':<26}" + "".join(f" {c:>16}" for c in alarm_row))
    print(f"  {'misses: none/under/over':<26}" + "".join(f" {c:>16}" for c in kinds_row))
    rem = [(n, f, passage_killed(extract(n))) for n, f in remarks.items()]
    rem_pos = [r for r in rem if r[1] > 0]
    rem_exact = sum(1 for _, f, p in rem_pos if p == f)
    print(f"  notes with coders' remarks (apart, both halves): exact {rem_exact}/{len(rem_pos)}")
    tuning = by_half["tuning"]
    misses = [r for r in tuning if r[1] > 0 and r[2] != r[1]]
    alarms = [r for r in tuning if r[1] == 0 and r[2] > 0]
    print(f"  failures in the tuning half: {len(misses)} misses, {len(alarms)} false alarms")
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


# --- pages (the text stage) -------------------------------------------------------------------


def eval_pages(folder: Path, show: int) -> None:
    """Snippets kept and boilerplate left out by our text stage on trafilatura's news pages."""
    data = json.loads((folder / "evaldata_news_subset.json").read_text(encoding="utf-8"))
    files = {p.name: p for p in [*folder.glob("cache/*.html"), *folder.glob("eval/*.html")]}
    kept = kept_of = left = left_of = pages = empty = 0
    misses: list[str] = []
    started = time.perf_counter()
    for item in data.values():
        page = files.get(item.get("file", ""))
        if page is None:
            continue
        pages += 1
        try:
            text = article_text(page.read_bytes(), content_type="text/html", metadata=False).text
        except TextError:
            text = ""
            empty += 1
        for snippet in item.get("with", []):
            kept_of += 1
            kept += snippet in text
            if snippet not in text:
                misses.append(f"  {page.name}: lost {snippet!r}")
        for snippet in item.get("without", []):
            left_of += 1
            left += snippet not in text
            if snippet in text:
                misses.append(f"  {page.name}: kept boilerplate {snippet!r}")
    elapsed = (time.perf_counter() - started) * 1000 / max(1, pages)
    print(f"pages: {pages} news pages ({elapsed:.1f} ms each), {empty} without text")
    print(f"  main-text snippets kept {kept}/{kept_of} = {kept / max(1, kept_of):.1%}")
    print(f"  boilerplate left out    {left}/{left_of} = {left / max(1, left_of):.1%}")
    for line in misses[:show]:
        print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shared", nargs="?", default=str(REPO.parent / "shared"))
    parser.add_argument("--failures", type=int, default=200, help="failures to print per set")
    parser.add_argument("--only", choices=("devset", "acled", "plover", "pages"))
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
    pages = Path(args.shared) / "peer" / "trafilatura"
    if args.only == "pages" and not (pages / "evaldata_news_subset.json").is_file():
        die(f"missing {pages / 'evaldata_news_subset.json'}")
    if args.only in (None, "pages") and (pages / "evaldata_news_subset.json").is_file():
        eval_pages(pages, args.failures)


if __name__ == "__main__":
    main()
