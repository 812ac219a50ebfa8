"""Crash safety with real processes: SIGKILL an ingest loop at random points, restart, check.

The child (tests/support/crash_driver.py) runs the real store, projections and rule evaluator. After
every kill it is started again; once all trials are done a last run finishes the work. Then
the log must have no duplicate and no gap, every article must have ended extracted or failed
exactly once, the projections must equal a replay from zero, and the alerts (and their outbox
rows) must be exactly those of a run that was never killed.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from monitor.store.log import EventStore, StoredEvent
from monitor.store.projections import (
    ConflictState,
    all_projections,
    dump_state,
    follow,
    rebuild,
)
from monitor.store.tables import EventRow, OutboxRow, RuleState
from tests.conftest import ROOT
from tests.support import crash_driver

TRIALS = 20
MAX_TRIALS = 3 * TRIALS  # kills that land too early or too late are retried, up to this many
ARTICLES = 150
STARTUP_KILLS = 4  # trials killed on a clock started at spawn: some land in start-up/migration
MAX_DELAY = 0.3  # seconds after "ready"

RULES = """
rules:
  - id: toll-jump
    type: jump
    event: casualties
    where: {cumulative: true, count: {exists: true}}
    value: count
    series: [watch, side, category, outcome]
    min_increase: 100
    channels: [urgent]
  - id: new-actor
    type: new_value
    event: third_party
    value: actor
    per: [watch]
  - id: collapse
    type: match
    event: ceasefire
    where: {status: collapsed}
    dedup_key: "{{ watch }}"
    cooldown: 3d
"""


def spawn(url: str, rules: Path) -> subprocess.Popen[str]:
    """The driver, its stderr in ``rules/../driver.err`` (shown when a start-up fails)."""
    with (rules.parent / "driver.err").open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.crash_driver", url, str(rules), str(ARTICLES)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def stderr_of(rules: Path) -> str:
    return (rules.parent / "driver.err").read_text()[-3000:]


def kill_at_random(url: str, rules: Path, rng: random.Random, trial: int) -> str:
    """One trial: start the loop, SIGKILL it at a random moment; returns its last progress line."""
    proc = spawn(url, rules)
    assert proc.stdout is not None
    if trial < STARTUP_KILLS:
        time.sleep(rng.uniform(0.1, 0.9))
    else:
        first = proc.stdout.readline().strip()
        assert first == "ready", f"the driver did not start:\n{stderr_of(rules)}"
        time.sleep(rng.uniform(0.0, MAX_DELAY))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    lines = proc.stdout.read().splitlines()
    proc.stdout.close()
    return lines[-1] if lines else "(nothing)"


def alerts_and_outbox(store: EventStore) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    with store.read_session() as session:
        raised = Counter(
            e.data.alert_id for e in store.read(types=["AlertRaised"], session=session)
        )
        rows = session.execute(select(OutboxRow.alert_id, OutboxRow.channel)).all()
    return raised, Counter((a, c) for a, c in rows)


def state_rows(store: EventStore) -> list[str]:
    """The conflict state's rows, without the checkpoint: positions differ between two runs
    (alerts and deliveries interleave differently), the state they lead to must not."""
    lines = dump_state(store, [ConflictState()]).splitlines()
    return [line for line in lines if not line.startswith('["checkpoint"')]


def rule_state(store: EventStore) -> list[tuple[str, str, dict]]:
    with store.read_session() as session:
        rows = session.execute(select(RuleState).order_by(RuleState.rule, RuleState.key)).scalars()
        return [(r.rule, r.key, r.value) for r in rows]


def check_consistent(url: str, where: str) -> None:
    """What must hold right after any kill: every article all there or not at all, no gap,
    and every alert in the log queued for each of its channels (same transaction)."""
    store = EventStore(url, create=False)
    try:
        with store.read_session() as session:
            if not inspect(session.connection()).has_table("events"):
                return  # killed before the first migration committed: nothing to check
        with store.read_session() as session:
            rows = list(
                session.execute(
                    select(EventRow.seq, EventRow.stream, EventRow.idempotency_key).order_by(
                        EventRow.seq
                    )
                ).all()
            )
            alerts = list(store.read(types=["AlertRaised"], session=session))
            queued = set(session.execute(select(OutboxRow.alert_id, OutboxRow.channel)).all())
        assert [r.seq for r in rows] == list(range(1, len(rows) + 1)), where
        keys: dict[str, list[str | None]] = {}
        for r in rows:
            if r.stream.startswith("article:"):
                keys.setdefault(r.stream, []).append(r.idempotency_key)
        for stream, got in keys.items():
            want = [e.idempotency_key for e in crash_driver.article_events(int(stream[9:]))]
            assert got == want, f"{where}: {stream} is partial"
        expected = {(a.data.alert_id, c) for a in alerts for c in a.data.channels}
        assert queued == expected, where
    finally:
        store.close()


def assert_projections_replay(store: EventStore, reference: EventStore) -> None:
    """Caught up, the projections equal a rebuild from zero and the run that was never killed."""
    for projection in all_projections():  # the log moved on after the last advance
        follow(store, projection)
    live = dump_state(store, all_projections())
    for projection in all_projections():
        rebuild(store, projection)
    assert dump_state(store, all_projections()) == live
    assert state_rows(store) == state_rows(reference)


def landed_mid_run(line: str) -> bool:
    return line.startswith("article") or line == "ready"


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_duplicates_nothing(db_url: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    landed: list[str] = []
    # Most kills must land while articles are being ingested, or the test proves little. On a
    # busy machine a kill can land before the work starts or after it ends: such a trial
    # proves nothing either way, so another one is run instead of failing the test.
    trial = 0
    while trial < TRIALS or sum(map(landed_mid_run, landed)) < TRIALS // 2:
        assert trial < MAX_TRIALS, f"seed {seed}: kills never landed mid-run: {landed}"
        landed.append(kill_at_random(db_url, rules, rng, trial))
        check_consistent(db_url, f"seed {seed}, trial {trial}, killed after {landed[-1]!r}")
        trial += 1

    final = spawn(db_url, rules)
    out, _ = final.communicate(timeout=120)
    assert final.returncode == 0, f"seed {seed}:\n{stderr_of(rules)}"
    assert out.splitlines()[-1] == "done"

    # A run that was never killed, for comparison.
    reference = EventStore(f"sqlite:///{tmp_path / 'reference.db'}")
    crash_driver.run(reference.url, rules, ARTICLES, out=io.StringIO())

    store = EventStore(db_url)
    with store.read_session() as session:
        rows = list(session.execute(select(EventRow).order_by(EventRow.seq)).scalars())
    # No gap, no duplicate.
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1)), f"seed {seed}"
    assert store.head() == len(rows)
    assert len({r.id for r in rows}) == len(rows)
    keys = [r.idempotency_key for r in rows if r.idempotency_key]
    assert len(set(keys)) == len(keys)
    streams: dict[str, list[int]] = {}
    for r in rows:
        streams.setdefault(r.stream, []).append(r.stream_version)
    assert all(v == list(range(1, len(v) + 1)) for v in streams.values())

    # Every article is in the log once, whole, and ended extracted or failed.
    for i in range(ARTICLES):
        stored = store.read_stream(f"article:a{i:05d}")
        expected = crash_driver.article_events(i)
        assert [e.idempotency_key for e in stored] == [e.idempotency_key for e in expected], i
        assert stored[-1].type in ("ArticleFailed", "FactReported", "ArticleExtracted")
        assert sum(e.type in ("ArticleExtracted", "ArticleFailed") for e in stored) == 1

    # Projections equal a replay from zero, and the conflict state equals the unkilled run's.
    assert_projections_replay(store, reference)

    # No alert lost or raised twice, each queued once per channel, as in the unkilled run.
    raised, outbox = alerts_and_outbox(store)
    ref_raised, ref_outbox = alerts_and_outbox(reference)
    assert ref_raised and max(ref_raised.values()) == 1
    assert raised == ref_raised, f"seed {seed}"
    assert outbox == ref_outbox, f"seed {seed}"
    assert rule_state(store) == rule_state(reference)
    store.close()
    reference.close()


# --- the real `monitor replay`, killed -----------------------------------------------------------

REPLAY_TRIALS = int(os.environ.get("CRASH_REPLAY_TRIALS", "8"))
REPLAY_ARTICLES = 80
WATCH = """
id: nk
name: Nagorno-Karabakh conflict
parties:
  ARM: {name: Armenia, aliases: [Armenian, Armenians, Yerevan, Armenian Defense Ministry]}
  AZE: {name: Azerbaijan, aliases: [Azerbaijani, Azeri, Baku]}
  NKR: {name: Nagorno-Karabakh, aliases: [Karabakh, Artsakh, Stepanakert]}
sides: {armenian: [ARM, NKR], azerbaijani: [AZE]}
"""
HELPERS = ["Turkey", "Russia", "France", "Iran", "Israel", "Georgia"]


def toll(i: int) -> int:
    """A rising toll that jumps by 150 every sixth article: the jump rule fires on those."""
    return 200 + 40 * i + 150 * (i // 6)


def write_articles(folder: Path) -> list[Path]:
    """Plain-text articles the extractor reads: rising tolls, outside helpers, ceasefires;
    every ninth file is empty and must end as a failed article."""
    folder.mkdir()
    paths = []
    for i in range(REPLAY_ARTICLES):
        lines = (
            []
            if i % 9 == 4
            else [
                f"Report number {i} from the front.",
                f"The Armenian Defense Ministry said the military death toll rose to {toll(i)}.",
                f"{HELPERS[i % len(HELPERS)]} sent arms to Azerbaijan, officials in Baku said.",
                "A ceasefire in Karabakh collapsed on Sunday." if i % 5 == 0 else "",
            ]
        )
        path = folder / f"{i:03d}.txt"
        path.write_text("\n\n".join(line for line in lines if line))
        paths.append(path)
    return paths


def replay_command(url: str, rules: Path, articles: list[Path]) -> list[str]:
    return [
        sys.executable, "-m", "monitor.cli", "replay", *map(str, articles),
        "--db", url, "--rules", str(rules), "--notify", "json://127.0.0.1:9/", "--format", "jsonl",
    ]  # fmt: skip


def kill_replay(cmd: list[str], rng: random.Random) -> str:
    """Start a replay; once it has ingested its first article, SIGKILL it at a random moment.
    Returns the last article it logged, or says that it had finished before the kill."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if "monitor.pipeline: article" in line or "replayed" in line:
            break
    time.sleep(rng.uniform(0.0, 0.6))
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    seen.extend(proc.stderr.read().splitlines())
    proc.stderr.close()
    articles = [line for line in seen if "monitor.pipeline: article" in line]
    last = articles[-1].split("article ")[-1][-40:] if articles else "(no article yet)"
    return last if alive else "(had exited)"


def article_outcomes(store: EventStore) -> dict[str, list[str]]:
    """Event types of every article stream, keyed by the article's URL."""
    streams: dict[str, list[StoredEvent]] = {}
    for event in store.read():
        if event.stream.startswith("article:"):
            streams.setdefault(event.stream, []).append(event)
    return {events[0].data.url: [e.type for e in events] for events in streams.values()}


def check_whole(store: EventStore, where: str) -> None:
    for url, types in article_outcomes(store).items():
        ended = [t for t in types if t in ("ArticleExtracted", "ArticleFailed")]
        assert types[0] == "ArticleDiscovered" and len(ended) == 1, f"{where}: {url} {types}"


@pytest.mark.slow
def test_sigkill_during_monitor_replay(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    (rules / "watches").mkdir(parents=True)
    (rules / "alerts").mkdir()
    (rules / "watches" / "nk.yaml").write_text(WATCH)
    (rules / "alerts" / "rules.yaml").write_text(RULES)
    articles = write_articles(tmp_path / "articles")
    url = f"sqlite:///{tmp_path / 'events.db'}"
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    landed = []
    for trial in range(REPLAY_TRIALS):
        landed.append(kill_replay(replay_command(url, rules, articles), rng))
        store = EventStore(url)
        check_whole(store, f"seed {seed}, trial {trial}, after {landed[-1]}")
        store.close()
    # The empty files fail by design, so a whole replay reports failures: exit status 1.
    final = subprocess.run(
        replay_command(url, rules, articles), cwd=ROOT, capture_output=True, text=True
    )
    assert final.returncode == 1 and "Traceback" not in final.stderr, final.stderr[-3000:]
    ref_url = f"sqlite:///{tmp_path / 'reference.db'}"
    reference = subprocess.run(
        replay_command(ref_url, rules, articles), cwd=ROOT, capture_output=True, text=True
    )
    assert reference.returncode == 1 and "Traceback" not in reference.stderr

    store, ref = EventStore(url), EventStore(ref_url)
    events = list(store.read())
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), f"seed {seed}"
    assert len({e.id for e in events}) == len(events)
    check_whole(store, f"seed {seed}, final")
    outcomes = article_outcomes(store)
    assert set(outcomes) == {p.resolve().as_uri() for p in articles}
    assert outcomes == article_outcomes(ref)  # every article whole: same events as unkilled
    failed = [u for u, types in outcomes.items() if "ArticleFailed" in types]
    assert len(failed) == len([i for i in range(REPLAY_ARTICLES) if i % 9 == 4])

    assert_projections_replay(store, ref)

    raised, outbox = alerts_and_outbox(store)
    ref_raised, ref_outbox = alerts_and_outbox(ref)
    assert len(ref_raised) >= 10 and max(ref_raised.values()) == 1
    assert raised == ref_raised, f"seed {seed}: kills after {landed}"
    assert outbox == ref_outbox
    store.close()
    ref.close()
