"""The daily digest: one message per watch and day, built from what the log learned that day,
delivered through the outbox like any alert, exactly once, muted by silences."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.alerting.digest import Digester, last_due
from monitor.alerting.silences import add_silence
from monitor.config import ChannelConfig, ConfigError, load_settings
from monitor.events import ArticleRef, Casualties, Ceasefire, FactReported
from monitor.runtime import Runtime
from monitor.store.log import EventStore, NewEvent
from monitor.store.tables import OutboxRow
from monitor.watches import Party, Watch
from tests.support.httpserver import Reply, TestServer
from tests.support.notify_helpers import host_of, posts

WATCH = Watch(
    id="sd",
    name="Sudan conflict",
    parties={"SAF": Party(name="Sudanese Armed Forces"), "RSF": Party(name="Rapid Support Forces")},
)
QUIET = Watch(id="quiet", name="A quiet place", parties={"X": Party(name="X")})


def fact(n: int, item: Casualties | Ceasefire) -> NewEvent:
    article = ArticleRef(
        article_id=f"a{n}",
        url=f"https://news.example/{n}",
        published=datetime(2023, 5, 1, tzinfo=UTC) + timedelta(hours=n),
    )
    return NewEvent(
        stream=f"article:a{n}",
        data=FactReported(watch="sd", article=article, fact=item),
        idempotency_key=f"fact:{n}",
        occurred_at=article.published,
    )


def toll(count: int) -> Casualties:
    quote = f"The civilian death toll in Khartoum rose to {count}."
    return Casualties(
        quote=quote, span=(0, len(quote)), category="civilian", count=count, cumulative=True
    )


def filled(tmp_path: Path) -> EventStore:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    quote = "The truce collapsed on Monday."
    store.append(
        [
            fact(1, toll(45)),
            fact(2, toll(134)),
            fact(3, Ceasefire(quote=quote, span=(0, len(quote)), status="collapsed")),
        ]
    )
    return store


def a_day_later() -> datetime:
    """A moment whose last digest time falls after the facts just appended: it covers them."""
    return datetime.now(UTC) + timedelta(days=1)


def test_last_due_is_the_latest_digest_time_not_after_now() -> None:
    at = time(7, 0)
    assert last_due(datetime(2023, 5, 2, 8, tzinfo=UTC), at) == datetime(2023, 5, 2, 7, tzinfo=UTC)
    assert last_due(datetime(2023, 5, 2, 6, tzinfo=UTC), at) == datetime(2023, 5, 1, 7, tzinfo=UTC)


def test_one_digest_per_watch_and_day_with_what_changed_and_the_state(tmp_path: Path) -> None:
    store = filled(tmp_path)
    digester = Digester(store, ["desk"], time(7, 0))
    now = a_day_later()
    sent = digester.run([WATCH, QUIET], now)
    assert [d.watch for d in sent] == ["sd"]  # the quiet watch learned nothing: no digest
    digest = sent[0]
    assert digest.rule == "daily-digest" and digest.channels == ["desk"]
    assert digest.data["facts"] == 3
    assert digest.data["by_type"] == {"casualties": 2, "ceasefire": 1}
    assert [t["count"] for t in digest.data["tolls"]] == [134]
    assert digest.data["ceasefire"]["status"] == "collapsed"
    assert "toll civilian killed: 134" in digest.body and "ceasefire: collapsed" in digest.body
    assert "rose to 45" in digest.body  # each fact quoted with its source
    # Exactly once: asking again (another tick, another replica) queues nothing more.
    assert digester.run([WATCH, QUIET], now + timedelta(minutes=5)) == []
    with store.read_session() as session:
        rows = session.execute(select(OutboxRow.alert_id, OutboxRow.channel)).all()
    assert rows == [(digest.alert_id, "desk")]
    # The next day learned nothing new: no digest then either.
    assert digester.run([WATCH], now + timedelta(days=1)) == []
    store.close()


def test_a_digest_is_rebuilt_the_same_from_the_log(tmp_path: Path) -> None:
    store = filled(tmp_path)
    now = a_day_later()
    first = Digester(store, ["desk"], time(7, 0)).run([WATCH], now)[0]
    copy = EventStore(f"sqlite:///{tmp_path / 'copy.db'}")
    copy.append([NewEvent(**e.model_dump(include={"stream", "data", "idempotency_key"}))
                 for e in store.read(types=["FactReported"])])  # fmt: skip
    # The copy's facts were recorded now, as the originals were: the same day's digest.
    again = Digester(copy, ["desk"], time(7, 0)).run([WATCH], now)[0]
    assert again.alert_id == first.alert_id
    assert again.body == first.body and again.data == first.data
    store.close()
    copy.close()


def test_a_silence_mutes_the_digest_once_and_for_all(tmp_path: Path) -> None:
    store = filled(tmp_path)
    now = a_day_later()
    add_silence(store, ["rule=daily-digest"], timedelta(days=2), now=now - timedelta(hours=1))
    digester = Digester(store, ["desk"], time(7, 0))
    assert digester.run([WATCH], now) == []
    suppressed = list(store.read(types=["AlertSuppressed"]))
    assert len(suppressed) == 1 and suppressed[0].data.kind == "silence"
    assert digester.run([WATCH], now + timedelta(minutes=1)) == []
    assert len(list(store.read(types=["AlertSuppressed"]))) == 1
    store.close()


def test_digest_channels_must_exist(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text('[digest]\nchannels = ["nowhere"]\nat = "07:30"\n')
    with pytest.raises(ConfigError, match="nowhere"):
        load_settings(config)
    config.write_text('[digest]\nat = "25:00"\n')
    with pytest.raises(ConfigError, match="25:00"):
        load_settings(config)


def test_the_runtime_delivers_the_digest_to_a_real_webhook(tmp_path: Path, web: TestServer) -> None:
    web.route("/digest", Reply(200, b"ok"))
    rules = tmp_path / "rules"
    (rules / "watches").mkdir(parents=True)
    (rules / "alerts").mkdir()
    (rules / "watches" / "sd.yaml").write_text(
        "id: sd\nname: Sudan conflict\nparties:\n  SAF: {name: Sudanese Armed Forces}\n"
    )
    settings = load_settings(
        None,
        db=f"sqlite:///{tmp_path / 'events.db'}",
        rules_dir=rules,
        channels=[ChannelConfig(name="desk", url=f"json://{host_of(web)}/digest", tags=[])],
        digest={"channels": ["desk"], "at": "06:00"},
    )
    runtime = Runtime(settings)
    try:
        filled(tmp_path).close()
        sent = runtime.send_digests(a_day_later())
        assert len(sent) == 1
        runtime.deliver(flush=True)
    finally:
        runtime.close()
    [request] = posts(web, "/digest")
    payload = json.loads(request.body)
    assert payload["rule"] == "daily-digest" and payload["watch"] == "sd"
    assert payload["data"]["facts"] == 3


def test_the_digester_folds_on_from_one_day_to_the_next(tmp_path: Path) -> None:
    """Day one's digest, then more facts, then day two's: the digester's kept fold moves on by
    the facts of the day, and its digest equals the one a fresh digester builds from the log."""
    store = filled(tmp_path)
    first_day = datetime.now(UTC)  # the digest time: after the first three facts were recorded
    quote = "The truce was agreed again."
    store.append(
        [fact(4, toll(210)), fact(5, Ceasefire(quote=quote, span=(0, len(quote)), status="agreed"))]
    )
    kept = Digester(store, ["desk"], first_day.time())
    day_one = kept.run([WATCH], first_day + timedelta(seconds=1))[0]
    assert day_one.data["facts"] == 3 and [t["count"] for t in day_one.data["tolls"]] == [134]
    with (
        closing(sqlite3.connect(tmp_path / "events.db")) as src,
        closing(sqlite3.connect(tmp_path / "copy.db")) as dst,
    ):
        src.backup(dst)  # the log as of day one (the backup API also copies the WAL's pages)
    fold = kept.folds._folds["sd"]
    day_two_time = first_day + timedelta(days=1, seconds=1)
    day_two = kept.run([WATCH], day_two_time)[0]
    assert kept.folds._folds["sd"] is fold  # folded on, not folded again
    assert day_two.data["facts"] == 2 and [t["count"] for t in day_two.data["tolls"]] == [210]
    assert day_two.data["ceasefire"]["status"] == "agreed"
    store.close()
    copy = EventStore(f"sqlite:///{tmp_path / 'copy.db'}")
    again = Digester(copy, ["desk"], first_day.time()).run([WATCH], day_two_time)[0]
    assert again.body == day_two.body and again.data == day_two.data
    copy.close()
