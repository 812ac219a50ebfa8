"""The ``monitor`` command. With ``--format jsonl`` stdout carries JSON lines only; logs go to stderr."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import select

from monitor.alerting.rules import RuleError, load_rules
from monitor.config import ConfigError, FeedConfig, Settings, load_settings
from monitor.events import AlertRaised
from monitor.extract.normalize import normalize
from monitor.extract.text import TextError, article_text
from monitor.logs import setup_logging
from monitor.runtime import Runtime, publication_order
from monitor.sources.feeds import FeedError, FeedItem, parse_feed
from monitor.sources.fetch import FetchError, fetch
from monitor.store.db import StoreError
from monitor.store.log import EventStore
from monitor.store.projections import all_projections, rebuild
from monitor.store.tables import AlertState, Checkpoint, FeedHealth, OutboxRow
from monitor.watches import WatchError, load_watch, load_watches

log = logging.getLogger("monitor")
FEED_SUFFIXES = {".xml", ".rss", ".atom", ".feed"}
ARTICLE_SUFFIXES = {".txt", ".html", ".htm"}


class UsageError(Exception):
    """A problem the user can fix; printed without a traceback, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    setup_logging(getattr(args, "log_level", None) or "INFO")
    try:
        return int(args.func(args) or 0)
    except (UsageError, ConfigError, StoreError, WatchError) as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    except RuleError as exc:
        print(f"monitor: invalid rules:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description=__doc__)
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    def config_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="TOML config file (default: $MONITOR_CONFIG)")
        p.add_argument("--db", help="SQLAlchemy URL, e.g. sqlite:///monitor.db")

    def fmt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--format", choices=["text", "jsonl"], default="text")

    p = command("run", cmd_run, "run the daemon in the foreground")
    config_args(p)
    p.add_argument("--notify", action="append", default=[], metavar="URL", help="extra Apprise URL for every alert")

    p = command("replay", cmd_replay, "ingest feeds or article files through the whole pipeline, then exit")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    config_args(p)
    p.add_argument("--rules", type=Path, help="rules directory (watches/ and alerts/)")
    p.add_argument("--notify", action="append", default=[], metavar="URL")
    fmt(p)

    p = command("extract", cmd_extract, "print normalized events for text or HTML files; writes no log")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--watch", type=Path, help="watch YAML: enables third-party involvement")
    fmt(p)

    p = command("events", cmd_events, "read the event log")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("id", nargs="?", help="event id (show)")
    p.add_argument("--after", type=int, default=0, help="only events with seq above this")
    p.add_argument("--type", action="append", help="only events of this type (repeatable)")
    p.add_argument("--limit", type=int, default=None)
    config_args(p)
    fmt(p)

    p = command("alerts", cmd_alerts, "alerts raised and their delivery state")
    p.add_argument("action", choices=["list"])
    config_args(p)
    fmt(p)

    p = command("rules", cmd_rules, "validate rule and watch files")
    p.add_argument("action", choices=["check"])
    p.add_argument("dir", type=Path, nargs="?", default=Path("rules"))

    p = command("rebuild", cmd_rebuild, "drop the projections and replay them from the log")
    config_args(p)

    p = command("status", cmd_status, "feeds, lag, outbox and last errors")
    config_args(p)
    fmt(p)
    return parser


# --- helpers ------------------------------------------------------------------------------------


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """Flags beat the environment, which beats the config file."""
    flags = {"db": getattr(args, "db", None), **{k: v for k, v in extra.items() if v is not None}}
    return load_settings(getattr(args, "config", None), **flags)


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def alert_json(alert: AlertRaised) -> dict[str, Any]:
    data = alert.model_dump(mode="json", exclude={"type"})
    return {"id": data.pop("alert_id"), **data}


# --- run ----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.daemon import Daemon

    settings = settings_from(args)
    setup_logging(args.log_level or settings.log_level, settings.log_format)
    return Daemon(settings, extra_notify=args.notify).run()


# --- replay -------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="monitor-replay-") as tmp:
        overrides: dict[str, Any] = {"rules_dir": args.rules.resolve() if args.rules else None}
        if not args.db and not (args.config or os.environ.get("MONITOR_CONFIG")):
            # No config and no --db: a throwaway database, so trying a rule pack leaves no trace.
            overrides["db"] = f"sqlite:///{tmp}/replay.db"
        runtime = Runtime(settings_from(args, **overrides), extra_notify=args.notify)
        try:
            return _replay(runtime, args.paths, args.format)
        finally:
            runtime.close()


def _replay(runtime: Runtime, paths: Sequence[Path], fmt: str) -> int:
    items = sorted(collect_items(runtime, paths), key=publication_order)
    raised: list[AlertRaised] = []
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("replaying", total=len(items))
        for item in items:
            result = runtime.ingest(item)
            progress.advance(task)
            for alert in runtime.advance():
                raised.append(alert)
                if fmt == "jsonl":
                    emit(alert_json(alert))
            log.debug("%s: %s", item.url, result.status)
    while runtime.deliver():
        pass
    if fmt == "text":
        _print_alerts(raised)
    log.info("replayed %d articles, raised %d alerts", len(items), len(raised))
    return 0


def collect_items(runtime: Runtime, paths: Sequence[Path]) -> Iterator[FeedItem]:
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
        if path.is_dir():
            feeds = sorted(p for p in path.rglob("*") if p.suffix.lower() in FEED_SUFFIXES)
            if not feeds:
                raise UsageError(f"{path}: no feed files (*.xml, *.rss, *.atom) found")
            for feed in feeds:
                yield from _feed_items(runtime, feed)
        elif path.suffix.lower() in ARTICLE_SUFFIXES:
            from monitor.pipeline import item_for_file

            yield item_for_file(path)
        else:
            yield from _feed_items(runtime, path)


def _feed_items(runtime: Runtime, path: Path) -> list[FeedItem]:
    feed = FeedConfig(name=path.stem, url=path.resolve().as_uri())
    return runtime.poll(feed)


def _print_alerts(alerts: list[AlertRaised]) -> None:
    console = Console()
    if not alerts:
        console.print("no alerts raised")
        return
    for alert in alerts:
        console.print(f"[bold]{alert.severity.upper()}[/bold] {alert.title}", markup=True, highlight=False)
        for ev in alert.evidence:
            console.print(f"  > {ev.quote}", markup=False, highlight=False)
            console.print(f"    {ev.outlet or ''} {ev.url}", markup=False, highlight=False)


# --- extract ------------------------------------------------------------------------------------


def cmd_extract(args: argparse.Namespace) -> int:
    watch = load_watch(args.watch) if args.watch else None
    status = 0
    for path in args.files:
        try:
            raw = path.read_bytes()
            text = article_text(raw, url=path.resolve().as_uri(), content_type=_type_of(path))
        except (OSError, TextError) as exc:
            print(f"monitor: {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        for fact in normalize(text.text, watch):
            row = {**fact.model_dump(mode="json"), "file": str(path)}
            if args.format == "jsonl":
                emit(row)
            else:
                print(_fact_line(row))
    return status


def _type_of(path: Path) -> str | None:
    return {".html": "text/html", ".htm": "text/html", ".txt": "text/plain"}.get(path.suffix.lower())


def _fact_line(row: dict[str, Any]) -> str:
    skip = {"quote", "span", "file", "type"}
    fields = " ".join(f"{k}={v}" for k, v in row.items() if k not in skip and v not in (None, False, []))
    return f"{row['file']}:{row['span'][0]} {row['type']} {fields}\n    {row['quote']}"


# --- events, alerts, status, rules, rebuild -----------------------------------------------------


def open_store(args: argparse.Namespace) -> EventStore:
    return EventStore(settings_from(args).db)


def cmd_events(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        if args.action == "show":
            if not args.id:
                raise UsageError("events show needs an event id")
            event = store.get(args.id)
            if event is None:
                raise UsageError(f"no event {args.id}")
            events = [event]
        else:
            events = list(store.read(args.after, types=args.type, limit=args.limit))
        for event in events:
            if args.format == "jsonl":
                emit(event.to_json())
            else:
                print(f"{event.seq:>8} {event.recorded_at:%Y-%m-%d %H:%M:%S} {event.type:<18} {event.stream}")
        return 0
    finally:
        store.close()


def cmd_alerts(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        with store.session() as session:
            alerts = list(session.execute(select(AlertState).order_by(AlertState.seq)).scalars())
            rows = list(session.execute(select(OutboxRow)).scalars())
        deliveries: dict[str, list[OutboxRow]] = {}
        for row in rows:
            deliveries.setdefault(row.alert_id, []).append(row)
        table = Table("alert", "rule", "severity", "title", "deliveries")
        for alert in alerts:
            states = {r.channel: r.status for r in deliveries.get(alert.alert_id, [])}
            if args.format == "jsonl":
                emit({**alert.model_dump(mode="json"), "deliveries": states})
            else:
                table.add_row(alert.alert_id[:8], alert.rule, alert.severity, alert.title,
                              ", ".join(f"{c}:{s}" for c, s in states.items()) or "-")
        if args.format == "text":
            Console().print(table)
        return 0
    finally:
        store.close()


def cmd_rules(args: argparse.Namespace) -> int:
    problems: list[str] = []
    watches_dir, alerts_dir = args.dir / "watches", args.dir / "alerts"
    if not args.dir.is_dir():
        raise UsageError(f"{args.dir}: not a directory")
    try:
        watches = load_watches(watches_dir) if watches_dir.is_dir() else []
    except WatchError as exc:
        problems.append(str(exc))
        watches = []
    try:
        rules = load_rules(alerts_dir if alerts_dir.is_dir() else args.dir)
    except RuleError as exc:
        problems.extend(exc.problems)
        rules = None
    if rules is not None:
        known = {w.id for w in watches}
        for rule in rules.rules:
            for w in rule.watches or []:
                if watches and w not in known:
                    problems.append(f"rule {rule.id!r}: unknown watch {w!r} (known: {sorted(known)})")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"ok: {len(watches)} watches, {len(rules.rules) if rules else 0} rules")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        for projection in all_projections():
            count = rebuild(store, projection)
            print(f"{projection.name}: replayed {count} events", file=sys.stderr)
        return 0
    finally:
        store.close()


def cmd_status(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        head = store.head()
        with store.session() as session:
            checkpoints = {c.name: c.seq for c in session.execute(select(Checkpoint)).scalars()}
            feeds = list(session.execute(select(FeedHealth)).scalars())
            pending = len(list(session.execute(select(OutboxRow.id).where(OutboxRow.status == "pending")).scalars()))
        status = {
            "head": head,
            "lag": {name: head - seq for name, seq in checkpoints.items()},
            "outbox_pending": pending,
            "feeds": [f.model_dump(mode="json") for f in feeds],
        }
        if args.format == "jsonl":
            emit(status)
        else:
            console = Console()
            console.print(f"log head: {head}; outbox pending: {pending}")
            console.print("lag: " + ", ".join(f"{k}={v}" for k, v in status["lag"].items()))
            table = Table("feed", "last success", "failures", "last error")
            for f in feeds:
                table.add_row(f.feed, str(f.last_success or "-"), str(f.consecutive_failures), f.last_error or "")
            console.print(table)
        return 0
    finally:
        store.close()


if __name__ == "__main__":
    raise SystemExit(main())
