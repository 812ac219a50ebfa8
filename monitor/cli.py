"""The ``monitor`` command.

With ``--format jsonl`` stdout carries JSON lines only; logs go to stderr.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Types only: the modules behind them (rich, SQLAlchemy, the pipeline, Apprise) cost
    # seconds to import, so each command imports what it uses and `--help` imports none.
    from rich.console import Console

    from monitor.config import FeedConfig, Settings
    from monitor.events import AlertRaised, AlertSuppressed
    from monitor.extract.normalize import Explained
    from monitor.pipeline import IngestResult
    from monitor.runtime import Runtime
    from monitor.sources.feeds import FeedItem
    from monitor.sources.polling import PollOutcome
    from monitor.store.log import EventStore, StoredEvent

log = logging.getLogger("monitor")
FEED_SUFFIXES = {".xml", ".rss", ".atom", ".feed"}
ARTICLE_SUFFIXES = {".txt", ".html", ".htm"}
PUBLISHED_HELP = (
    "publication date of the article files given (e.g. 2020-10-01); overrides a "
    "'Published:' line in a .txt file's header block"
)


class UsageError(Exception):
    """A problem the user can fix; printed without a traceback, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    from monitor.logs import setup_logging

    setup_logging(getattr(args, "log_level", None) or "INFO")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = _exit_status(exc, args)
        if code is None:
            raise
        return code


def _exit_status(exc: Exception, args: argparse.Namespace) -> int | None:
    """Say an error the user can act on, without a traceback, and give the exit status; None
    for any other error. The error classes are imported here, not at start-up: a command
    that raised one has already imported its module."""
    if isinstance(exc, UsageError):
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, EmptyDatabase):
        print(f"monitor: {exc}", file=sys.stderr)
        return 0
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.alerting.rules import RuleError
    from monitor.config import ConfigError
    from monitor.store.db import StoreError, store_error
    from monitor.watches import WatchError

    if isinstance(exc, (ConfigError, StoreError)):
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, WatchError):
        print("monitor: invalid watches:\n" + "\n".join(exc.problems), file=sys.stderr)
        return 2
    if isinstance(exc, RuleError):
        print(f"monitor: invalid rules:\n{exc}", file=sys.stderr)
        return 2
    if isinstance(exc, SQLAlchemyError):  # the database failed after it opened (a disk fills up)
        print(f"monitor: {store_error(_db_of(args), exc)}", file=sys.stderr)
        return 2
    return None


def _db_of(args: argparse.Namespace) -> str:
    """The database a command used, for an error message (its settings may not load now)."""
    from monitor.config import ConfigError

    try:
        return settings_from(args).db
    except (ConfigError, OSError):
        return getattr(args, "db", None) or "the database"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor",
        description=(
            "Watch conflict news feeds and alert when something important changes. "
            "With --format jsonl, stdout carries JSON lines only; logs go to stderr."
        ),
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(metavar="COMMAND")
    # Global flags are accepted after the command too (`monitor status --log-level DEBUG`);
    # SUPPRESS keeps a subcommand from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level", default=argparse.SUPPRESS, help="DEBUG, INFO, WARNING, ERROR"
    )

    def command(
        name: str, func: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, parents=[common])
        p.set_defaults(func=func)
        return p

    def config_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="TOML config file (default: $MONITOR_CONFIG)")
        p.add_argument("--db", help="SQLAlchemy URL, e.g. sqlite:///monitor.db")

    def fmt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--format", choices=["text", "jsonl"], default="text")

    p = command("run", cmd_run, "run the daemon in the foreground")
    config_args(p)
    p.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="extra Apprise URL for every alert",
    )

    p = command(
        "replay", cmd_replay, "ingest feeds or article files through the whole pipeline, then exit"
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="feed or article files, directories, feed URLs"
    )
    config_args(p)
    p.add_argument("--rules", type=Path, help="rules directory (watches/ and alerts/)")
    p.add_argument("--published", help=PUBLISHED_HELP)
    p.add_argument(
        "--files-under",
        type=Path,
        metavar="DIR",
        help="local feeds' file: links may point inside DIR (default: the directory named, "
        "or a feed file's own directory)",
    )
    p.add_argument("--notify", action="append", default=[], metavar="URL")
    fmt(p)

    p = command(
        "extract", cmd_extract, "print normalized events for text or HTML files; writes no log"
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--watch", type=Path, help="watch YAML: enables third-party involvement")
    p.add_argument("--config", help="TOML config file: its [fetch] max_bytes caps each file")
    p.add_argument("--published", help=PUBLISHED_HELP)
    p.add_argument(
        "--explain",
        action="store_true",
        help="per sentence: the patterns that fired or were vetoed, and the facts found",
    )
    fmt(p)

    p = command("events", cmd_events, "read the event log, or move it between databases as JSONL")
    p.add_argument("action", choices=["list", "show", "export", "import"])
    p.add_argument(
        "id",
        nargs="?",
        help="show: sequence number or event id (a unique prefix is enough); "
        "export, import: JSONL file (default: stdout, stdin)",
    )
    p.add_argument("--after", type=int, default=0, help="only events with seq above this")
    p.add_argument("--type", action="append", help="only events of this type (repeatable)")
    p.add_argument("--limit", type=int, default=None)
    config_args(p)
    fmt(p)

    p = command("alerts", cmd_alerts_main, "alerts raised and their delivery state; explain one")
    p.add_argument("action", choices=["list", "explain", "retry"])
    p.add_argument("id", nargs="?", help="alert id or a unique prefix (explain, retry)")
    p.add_argument("--channel", help="retry: only the delivery to this channel")
    p.add_argument("--rules", type=Path, help="rules directory, to say whether a rule changed")
    config_args(p)
    fmt(p)

    p = command("notify", cmd_notify, "send a test message; print each target's result")
    p.add_argument("action", choices=["test"])
    p.add_argument("channels", nargs="*", metavar="CHANNEL", help="channel names (default: all)")
    p.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="also test this Apprise URL (repeatable)",
    )
    config_args(p)
    fmt(p)

    p = command("rules", cmd_rules_main, "validate, unit-test, backtest and explain rules")
    p.add_argument("action", choices=["check", "test", "backtest", "explain"])
    p.add_argument(
        "dir",
        nargs="*",
        metavar="PATH",
        help="check: rules dir; test: test files or dirs; explain: the rule id",
    )
    p.add_argument("--rules", type=Path, help="backtest/explain: rules dir (default: config's)")
    p.add_argument(
        "--against",
        type=Path,
        metavar="OLD_RULES_DIR",
        help="backtest: diff two rule sets over the same log: --against is the OLD side (e.g. "
        "the rules in production), --rules (default: the config's) the NEW side; '-' lines are "
        "alerts only the old rules raise, '+' lines alerts only the new ones raise",
    )
    p.add_argument(
        "--since", help="backtest: report alerts from this time (2020-10-24, or 7d, or '7d ago')"
    )
    p.add_argument(
        "--until", help="backtest: evaluate events up to this time (ISO date, or '1d ago')"
    )
    p.add_argument("--event", help="explain: the event id (or unique prefix) to explain")
    config_args(p)
    fmt(p)

    p = command("silence", cmd_silence, "mute matching alerts for a while (stored as events)")
    p.add_argument("action", choices=["add", "list", "expire"])
    p.add_argument("id", nargs="?", help="silence id or unique prefix (expire)")
    p.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="label matcher: =, !=, =~, !~ (repeatable; all must match)",
    )
    p.add_argument(
        "--for",
        dest="duration",
        default="2h",
        help="how long (e.g. 6h, 1d12h; default: %(default)s)",
    )
    p.add_argument("--comment", default="")
    p.add_argument("--author", default=os.environ.get("USER"))
    p.add_argument("--all", action="store_true", help="list: include expired silences")
    config_args(p)
    fmt(p)

    p = command("rebuild", cmd_rebuild, "drop the projections and replay them from the log")
    config_args(p)

    p = command("db", cmd_db, "database schema: apply pending migrations, or show the revision")
    p.add_argument("action", choices=["upgrade", "current"])
    p.add_argument("--revision", default="head", help="target revision (upgrade; default: head)")
    config_args(p)

    p = command("status", cmd_status, "feeds, lag, outbox and last errors")
    config_args(p)
    fmt(p)

    p = command(
        "timeline", cmd_timeline, "a watch's state now and its facts in the order they happened"
    )
    p.add_argument("watch", metavar="WATCH", help="the watch id, as in its YAML file")
    p.add_argument("--since", help="list facts from this time on (ISO, or 7d ago)")
    config_args(p)
    fmt(p)

    p = command("report", cmd_report, "every dashboard view in one self-contained HTML file")
    p.add_argument("--html", required=True, type=Path, metavar="FILE", help="where to write it")
    p.add_argument("--watch", help="only this watch (its id)")
    p.add_argument("--since", help="facts and alerts from this time on (ISO, or 7d ago)")
    p.add_argument("--rules", type=Path, help="rules directory, for watch names")
    config_args(p)

    p = command("poll", cmd_poll, "poll one feed now: through the running daemon, else alone")
    p.add_argument("feed", metavar="FEED", help="the feed's name in the config")
    p.add_argument("--alone", action="store_true", help="poll here even if a daemon runs")
    config_args(p)
    fmt(p)
    return parser


# --- helpers ------------------------------------------------------------------------------------


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """Flags beat the environment, which beats the config file."""
    from monitor.config import load_settings

    flags = {"db": getattr(args, "db", None), **{k: v for k, v in extra.items() if v is not None}}
    return load_settings(getattr(args, "config", None), **flags)


def console(*, stderr: bool = False) -> Console:
    """A console that prints text as it is: titles, quotes and errors come from feeds, so
    nothing in them may be read as markup (``[/]`` would crash), an emoji code or a highlight."""
    from rich.console import Console

    return Console(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=True)


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def alert_json(alert: AlertRaised) -> dict[str, Any]:
    data = alert.model_dump(mode="json", exclude={"type"})
    return {"id": data.pop("alert_id"), **data}


# --- run ----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.daemon import Daemon
    from monitor.logs import setup_logging
    from monitor.store.db import check_owner, store_error

    settings = settings_from(args)
    setup_logging(args.log_level or settings.log_level, settings.log_format)
    check_owner(settings.db)  # before the daemon's lock file appears beside the database
    try:
        daemon = Daemon(settings, extra_notify=args.notify, load=lambda: settings_from(args))
    except OSError as exc:  # its lock file beside the database, before the store opens it
        raise store_error(settings.db, exc) from exc
    # Threads ask for the interpreter lock every 1 ms instead of 5: /healthz and /metrics
    # answer within tens of milliseconds while poll and rule threads keep it busy (measured:
    # /metrics p99 during a backlog about halved, throughput unchanged).
    sys.setswitchinterval(0.001)
    # What is built by now (modules, settings, rules, the runtime) lives as long as the
    # process: set it aside from the cyclic garbage collector, whose full passes otherwise walk
    # it all holding the interpreter lock (about 110 ms a pass at 400 feeds, measured),
    # stalling every thread and /metrics with them (2,000 feeds, idle machine: first cycle
    # 332 -> 232 s, /metrics p99 in the backlog 137 -> 43 ms).
    gc.freeze()
    code = daemon.run()
    if daemon.abandoned:
        # A poll outlived the stop timeout: its thread would hold up interpreter exit, and its
        # lease is already released and fenced, so leave without waiting for it.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code


# --- replay -------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from monitor.runtime import Runtime

    with tempfile.TemporaryDirectory(prefix="monitor-replay-") as tmp:
        overrides: dict[str, Any] = {"rules_dir": args.rules.resolve() if args.rules else None}
        if not args.db and not (args.config or os.environ.get("MONITOR_CONFIG")):
            # No config and no --db: a throwaway database, so trying a rule pack leaves no trace.
            overrides["db"] = f"sqlite:///{tmp}/replay.db"
        runtime = Runtime(settings_from(args, **overrides), extra_notify=args.notify)
        try:
            return _replay(runtime, args)
        finally:
            runtime.close()


class ReplayTally:
    """What a replay read and what became of it: the summary line and the exit status."""

    def __init__(self) -> None:
        self.feeds = 0
        self.skipped_entries = 0
        self.failures: list[str] = []  # one line each: which input, and why
        self.undated: list[str] = []  # extracted with no date: facts without an event time
        self.articles: dict[str, int] = {}

    def polled(self, feed: FeedConfig, outcome: PollOutcome) -> None:
        self.feeds += 1
        self.skipped_entries += outcome.skipped
        if not outcome.ok:
            self.failures.append(f"feed {feed.url}: {outcome.error}")

    def ingested(self, result: IngestResult) -> None:
        status = result.status
        if status == "skipped" and result.reason == "failed before":
            status = "failed"  # still failing: a replay that cannot read it has failed
        self.articles[status] = self.articles.get(status, 0) + 1
        if status == "failed":
            self.failures.append(f"article {result.url}: {result.reason}")
        if status == "extracted" and result.published is None:
            self.undated.append(result.url)

    def summary(self, alerts: int) -> str:
        counts = ", ".join(
            f"{self.articles[k]} {label}"
            for k, label in (
                ("extracted", "extracted"),
                ("failed", "failed"),
                ("skipped", "already in the log"),
            )
            if self.articles.get(k)
        )
        feeds = f"{self.feeds} feeds" + (
            f" ({self.skipped_entries} entries without a link skipped)"
            if self.skipped_entries
            else ""
        )
        articles = sum(self.articles.values())
        undated = f", {len(self.undated)} undated" if self.undated else ""
        failed = f"; {len(self.failures)} inputs FAILED" if self.failures else ""
        return (
            f"replayed {feeds}, {articles} articles ({counts or 'none'}{undated}), "
            f"raised {alerts} alerts{failed}"
        )


def _replay(runtime: Runtime, args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from monitor.runtime import publication_order

    tally, fmt = ReplayTally(), args.format
    when = _published_flag(args.published)
    files_under = args.files_under.resolve() if args.files_under else None
    found = collect_items(runtime, args.paths, tally, when, files_under)
    items = sorted(found, key=publication_order)
    raised: list[AlertRaised] = []
    err = console(stderr=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("replaying", total=len(items))
        for item in items:
            result = runtime.ingest(item)
            tally.ingested(result)
            progress.advance(task)
            for alert in runtime.advance():
                raised.append(alert)
                if fmt == "jsonl":
                    emit(alert_json(alert))
            log.debug("%s: %s", item.url, result.status)
    # Once more, so the projections (``alerts list``) also hold the alerts raised last.
    for alert in runtime.advance():
        raised.append(alert)
        if fmt == "jsonl":
            emit(alert_json(alert))
    while runtime.deliver():
        pass
    if fmt == "text":
        _print_alerts(raised)
    for url in tally.undated:
        print(f"undated: {url} (no date from feed, page or header)", file=sys.stderr)
    for failure in tally.failures:
        print(f"failed: {failure}", file=sys.stderr)
    print(tally.summary(len(raised)), file=sys.stderr)
    return 1 if tally.failures else 0


def _published_flag(value: str | None) -> datetime | None:
    from monitor.extract.text import parse_published

    if value is None:
        return None
    when = parse_published(value)
    if when is None:
        raise UsageError(f"--published {value!r}: not a date (use e.g. 2020-10-01)")
    return when


def collect_items(
    runtime: Runtime,
    paths: Sequence[str],
    tally: ReplayTally,
    published: datetime | None,
    files_under: Path | None,
) -> Iterator[FeedItem]:
    from monitor.config import FeedConfig
    from monitor.pipeline import item_for_file

    for location in paths:
        if re.match(r"^https?://", location, re.I):
            # A feed URL named by the operator: trusted like a configured feed.
            name = re.sub(r"^https?://", "", location, flags=re.I).split("?")[0].strip("/")
            yield from _poll_into(runtime, tally, FeedConfig(name=name, url=location))
            continue
        path = Path(location)
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
        if path.is_dir():
            feeds = sorted(p for p in path.rglob("*") if p.suffix.lower() in FEED_SUFFIXES)
            if not feeds:
                raise UsageError(f"{path}: no feed files (*.xml, *.rss, *.atom) found")
            for feed in feeds:
                # The directory named on the command line bounds the feeds' file: links.
                yield from _feed_items(runtime, tally, feed, files_under or path.resolve())
        elif path.suffix.lower() in ARTICLE_SUFFIXES:
            yield item_for_file(path, published)
        else:
            yield from _feed_items(runtime, tally, path, files_under)


def _feed_items(
    runtime: Runtime, tally: ReplayTally, path: Path, files_under: Path | None = None
) -> list[FeedItem]:
    from monitor.config import FeedConfig

    feed = FeedConfig(name=path.stem, url=path.resolve().as_uri(), files_under=files_under)
    return _poll_into(runtime, tally, feed)


def _poll_into(runtime: Runtime, tally: ReplayTally, feed: FeedConfig) -> list[FeedItem]:
    items, outcome = runtime.poll(feed)
    tally.polled(feed, outcome)
    return items


def _print_alerts(alerts: list[AlertRaised]) -> None:
    from rich.text import Text

    out = console()
    if not alerts:
        out.print("no alerts raised")
        return
    for alert in alerts:
        out.print(Text.assemble((alert.severity.upper(), "bold"), " ", alert.title))
        for ev in alert.evidence:
            out.print(f"  > {ev.quote}")
            out.print(f"    {ev.outlet or ''} {ev.url}")


# --- extract ------------------------------------------------------------------------------------


def cmd_extract(args: argparse.Namespace) -> int:
    from monitor.extract.normalize import explain, normalize
    from monitor.extract.text import TextError, article_text, looks_like_html
    from monitor.sources.fetch import FetchError, read_file_capped
    from monitor.watches import load_watch

    watch = load_watch(args.watch) if args.watch else None
    cap = settings_from(args).fetch.max_bytes  # the same cap as a fetched page
    published = _published_flag(args.published)
    status = 0
    for path in args.files:
        try:
            raw = read_file_capped(path, cap)
            text = article_text(raw, url=path.resolve().as_uri(), content_type=_type_of(path))
        except (OSError, TextError, FetchError) as exc:
            where = "" if isinstance(exc, FetchError) else f"{path}: "  # it names the file
            print(f"monitor: {where}{exc}", file=sys.stderr)
            status = 1
            continue
        when = published or text.published
        if when is None:
            print(
                f"monitor: {path}: undated (no 'Published:' header, page date or --published): "
                "its facts would have no event time",
                file=sys.stderr,
            )
        place = _Place(text.text, 0 if looks_like_html(raw, _type_of(path)) else _lead_lines(raw))
        if args.explain:
            found, sentences = explain(text.text, watch, when)
            for sentence in sentences:
                _print_explained(args.format, path, place, sentence)
        else:
            found = normalize(text.text, watch, published=when)
            for fact in found.facts:
                line, column = place.of(fact.span[0])
                row = {
                    **fact.model_dump(mode="json"),
                    "file": str(path),
                    "published": when.isoformat() if when else None,
                }
                if args.format == "jsonl":
                    emit({**row, "line": line, "column": column})
                else:
                    print(_fact_line(row, line, column))
        for problem in [found.failed] if found.failed else found.problems:
            print(f"monitor: {path}: {problem}", file=sys.stderr)
            status = 1
    return status


class _Place:
    """Line and column (from 1) of an offset into an article's text. For a text file they
    are the file's own: its text differs only by the blank lines it starts with. For a page
    they are those of the text extracted from it."""

    def __init__(self, text: str, first_line: int) -> None:
        self.starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
        self.first_line = first_line

    def of(self, offset: int) -> tuple[int, int]:
        row = bisect.bisect_right(self.starts, offset) - 1
        return row + 1 + self.first_line, offset - self.starts[row] + 1


def _lead_lines(raw: bytes) -> int:
    """How many lines of a text file come before its article text: a header block and the
    blank lines the article text drops."""
    from monitor.extract.text import split_header

    decoded = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
    _, body = split_header(decoded)
    header = decoded[: len(decoded) - len(body)].count("\n")
    return header + next((i for i, line in enumerate(body.split("\n")) if line.strip()), 0)


def _type_of(path: Path) -> str | None:
    return {".html": "text/html", ".htm": "text/html", ".txt": "text/plain"}.get(
        path.suffix.lower()
    )


def _fact_line(row: dict[str, Any], line: int, column: int) -> str:
    skip = {"quote", "span", "file", "type", "pattern", "published"}
    fields = " ".join(
        f"{k}={v}" for k, v in row.items() if k not in skip and v not in (None, False, [])
    )
    where = f"{row['file']}:{line}:{column}"
    return f"{where} {row['type']} {fields} [{row['pattern']}]\n    {row['quote']}"


def _print_explained(fmt: str, path: Path, place: _Place, sentence: Explained) -> None:
    """One sentence of `extract --explain`: where it is, the patterns that fired or were
    vetoed there and why, and the facts it gave."""
    line, column = place.of(sentence.start)
    facts = [f.model_dump(mode="json") for f in sentence.facts]
    if fmt == "jsonl":
        notes = [
            {"pattern": n.pattern, "verdict": n.verdict, "detail": n.detail} for n in sentence.notes
        ]
        emit(
            {
                "file": str(path),
                "line": line,
                "column": column,
                "quote": sentence.quote,
                "notes": notes,
                "facts": facts,
            }
        )
        return
    print(f"{path}:{line}:{column} {sentence.quote}")
    for note in sentence.notes:
        detail = f"  {note.detail}" if note.detail else ""
        print(f"    {note.verdict:<6} {note.pattern}{detail}")
    for fact in facts:
        fields = " ".join(
            f"{k}={v}"
            for k, v in fact.items()
            if k not in ("quote", "span", "type", "pattern") and v not in (None, False, [])
        )
        print(f"    => {fact['type']} {fields} [{fact['pattern']}]")


# --- events, alerts, status, rules, rebuild -----------------------------------------------------


class EmptyDatabase(Exception):
    """A read-only command found the database empty: said on stderr, exit status 0."""


def db_source(args: argparse.Namespace) -> str:
    """Where the database setting came from, so a message can say why this one was opened."""
    if getattr(args, "db", None):
        return "from --db"
    if os.environ.get("MONITOR_DB"):
        return "from $MONITOR_DB"
    config = getattr(args, "config", None) or os.environ.get("MONITOR_CONFIG")
    return f"from {config}" if config else "the default: no --config, $MONITOR_CONFIG or --db"


def open_store(
    args: argparse.Namespace, mode: str = "read", settings: Settings | None = None
) -> EventStore:
    """The command's database, opened as the command needs it.

    ``read`` (status, lists, explain, export): an existing database, opened read-only: never
    created, migrated or written. ``change`` (silence add, alerts retry, rebuild): an existing
    database. ``create`` (events import): created when missing. Every mode names the database
    it opened in the log; a missing or empty one is said plainly. A command that has loaded
    its ``settings`` already passes them: loading them again costs start-up time.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.store.db import StoreError, describe, sqlite_path, store_error
    from monitor.store.log import EventStore

    url = (settings or settings_from(args)).db
    name, source = describe(url), db_source(args)
    path = sqlite_path(url)
    if mode != "create" and path is not None and not path.exists():
        raise UsageError(f"database {name} does not exist ({source}); nothing was created")
    if mode != "read":
        store = EventStore(url)
        log.info("database %s (%s)", name, source)
        return store
    from monitor.store import migrate

    store = EventStore(url, read_only=True)
    try:
        revision = migrate.current_revision(store.engine)
    except SQLAlchemyError as exc:
        store.close()
        raise store_error(url, exc) from exc
    if revision is None:
        store.close()
        raise EmptyDatabase(f"database {name} ({source}) is empty: nothing recorded yet")
    if revision != migrate.head_revision():
        store.close()
        raise StoreError(
            f"database {name} has schema {revision}, this monitor reads {migrate.head_revision()}:"
            " upgrade it with `monitor db upgrade` (as the service's user)"
        )
    log.info("database %s (%s)", name, source)
    return store


def cmd_events(args: argparse.Namespace) -> int:
    if args.action in ("export", "import"):
        return cmd_events_transfer(args)
    store = open_store(args)
    try:
        if args.action == "show":
            if not args.id:
                raise UsageError("usage: monitor events show SEQ|EVENT_ID")
            event = find_event(store, args.id)
            if args.format == "jsonl":
                emit(event.to_json())
            else:
                print(event_text(event))
            return 0
        for event in store.read(args.after, types=args.type, limit=args.limit):
            if args.format == "jsonl":
                emit(event.to_json())
            else:
                when = f"{event.recorded_at:%Y-%m-%d %H:%M:%S}"
                print(f"{event.seq:>8} {when} {event.type:<18} {event.stream}")
        return 0
    finally:
        store.close()


def find_event(store: EventStore, ref: str) -> StoredEvent:
    """An event by sequence number (``1234``) or by id, whole or a unique prefix."""
    from sqlalchemy import select
    from sqlmodel import col

    from monitor.store.log import to_stored
    from monitor.store.tables import EventRow

    ref = ref.strip()
    with store.read_session() as session:
        if ref.isdigit():
            rows = list(
                session.execute(select(EventRow).where(col(EventRow.seq) == int(ref))).scalars()
            )
            if rows:
                return to_stored(rows[0])
        stmt = select(EventRow).where(col(EventRow.id).startswith(ref, autoescape=True)).limit(6)
        rows = list(session.execute(stmt).scalars())
    if not rows:
        raise UsageError(f"no event with sequence number or id {ref!r}")
    if len(rows) > 1:
        found = ", ".join(f"{r.seq} ({r.id[:12]})" for r in rows[:5])
        raise UsageError(f"{ref!r} matches several events: {found}; give more of the id")
    return to_stored(rows[0])


def event_text(event: StoredEvent) -> str:
    """The whole event for a person: its envelope, then its data as indented JSON."""
    raw = event.to_json()
    occurred = raw["occurred_at"] or "-"
    lines = [
        f"event {raw['seq']}  {raw['type']} (version {raw['schema_version']})",
        f"  id           {raw['id']}",
        f"  stream       {raw['stream']} (version {raw['stream_version']})",
        f"  occurred at  {occurred}",
        f"  recorded at  {raw['recorded_at']}",
        f"  idempotency  {raw['idempotency_key'] or '-'}",
    ]
    if raw["metadata"]:
        lines.append(f"  metadata     {json.dumps(raw['metadata'], ensure_ascii=False)}")
    data = json.dumps(raw["data"], indent=2, ensure_ascii=False, sort_keys=False)
    return "\n".join([*lines, "  data", *(f"    {line}" for line in data.splitlines())])


def cmd_alerts(args: argparse.Namespace) -> int:
    """Raised alerts with their deliveries, and alerts a silence kept quiet (state silenced)."""
    from rich.table import Table
    from sqlalchemy import select
    from sqlmodel import col

    from monitor.store.tables import AlertState

    store = open_store(args)
    try:
        from monitor.notify.admin import delivery_states

        with store.read_session() as session:
            alerts = list(
                session.execute(select(AlertState).order_by(col(AlertState.seq))).scalars()
            )
        deliveries = delivery_states(store)
        silenced = silenced_alerts(store)
    finally:
        store.close()
    severities = _rule_severities(args)
    rows: list[tuple[int, dict[str, Any], str]] = []
    for alert in alerts:
        found = deliveries.get(alert.alert_id, [])
        row = {
            **alert.model_dump(mode="json"),
            "state": "raised",
            "deliveries": {d.channel: d.status for d in found},
            "delivery": [d.model_dump(mode="json") for d in found],
        }
        rows.append((alert.seq, row, ", ".join(d.describe() for d in found) or "-"))
    for seq, item, when in silenced:
        row = {
            "alert_id": item.alert_id,
            "seq": seq,
            "rule": item.rule,
            "severity": severities.get(item.rule),
            "watch": None,
            "title": item.title,
            "dedup_key": item.dedup_key,
            "raised_at": when,
            "state": "silenced",
            "silence": item.reason.removeprefix("silenced by "),
            "deliveries": {},
            "delivery": [],
        }
        words = row["silence"].split()
        by = words[1][:8] if len(words) > 1 and words[0] == "silence" else row["silence"]
        rows.append((seq, row, f"silenced by {by}"))
    rows.sort(key=lambda r: r[0])
    if args.format == "jsonl":
        for _seq, row, _state in rows:
            emit(row)
        return 0
    table = Table("raised (UTC)", "alert", "severity", "title", "state", expand=False)
    for _seq, row, state in rows:
        table.add_row(
            _clock(row["raised_at"]),
            row["alert_id"][:8] if row["alert_id"] else "-",
            row["severity"] or "-",
            f"{row['title'] or '-'} [{row['rule']}]",
            state,
        )
    console().print(table)
    return 0


def silenced_alerts(store: EventStore) -> list[tuple[int, AlertSuppressed, str]]:
    """Alerts a silence suppressed, from the log: (position, suppression, when it happened)."""
    from monitor.events import AlertSuppressed

    found = []
    for event in store.read(types=["AlertSuppressed"]):
        data = event.data
        if isinstance(data, AlertSuppressed) and data.kind == "silence":
            when = event.occurred_at or event.recorded_at
            found.append((event.seq, data, when.isoformat()))
    return found


def _rule_severities(args: argparse.Namespace) -> dict[str, str]:
    """Rule id -> severity, from the rules on disk when they load (silenced alerts record none)."""
    from monitor.alerting import commands
    from monitor.alerting.rules import RuleError
    from monitor.config import ConfigError

    try:
        rules_dir = args.rules or settings_from(args).rules_dir
        return {r.id: r.severity for r in commands.load_alert_rules(rules_dir).rules}
    except (RuleError, ConfigError, OSError, UsageError):
        return {}


def cmd_timeline(args: argparse.Namespace) -> int:
    from monitor.alerting.backtest import parse_when
    from monitor.timeline import timeline

    try:
        since = parse_when(args.since, datetime.now(UTC)) if args.since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    store = open_store(args)
    try:
        story = timeline(store, args.watch, since)
    finally:
        store.close()
    if args.format == "jsonl":
        state = story.model_dump(mode="json", exclude={"facts"})
        emit({"kind": "state", **state})
        for fact in story.facts:
            emit({"kind": "fact", **fact.model_dump(mode="json")})
        return 0
    print(f"{story.watch}: {len(story.facts)} facts")
    for toll in story.tolls:
        qualifier = {"at_least": "at least ", "about": "about "}.get(toll.qualifier, "")
        who = " ".join(x for x in (toll.side, toll.category) if x)
        print(f"  toll  {who} {toll.outcome}: {qualifier}{toll.count:,} ({toll.at:%Y-%m-%d})")
    if story.ceasefire:
        c = story.ceasefire
        broker = f", broker {c.broker}" if c.broker else ""
        print(f"  ceasefire  {c.status}{broker} ({c.at:%Y-%m-%d})")
    for o in story.third_parties:
        helps = f" supporting {', '.join(o.supports)}" if o.supports else ""
        print(f"  outside  {o.actor}: {', '.join(o.kinds)}{helps} (since {o.first_seen:%Y-%m-%d})")
    for fact in story.facts:
        print(f"{fact.at:%Y-%m-%d %H:%M}  {terminal_safe(fact.summary)}")
        print(f"    {terminal_safe(fact.quote[:200])}")
        print(f"    {terminal_safe(fact.url)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Render the dashboard's views to one file: to attach to a message, or to archive."""
    from monitor.alerting.backtest import parse_when
    from monitor.watches import load_watches
    from monitor.web.render import report

    try:
        since = parse_when(args.since, datetime.now(UTC)) if args.since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    settings = settings_from(args)
    watches_dir = (args.rules or settings.rules_dir) / "watches"
    names = {w.id: w.name for w in load_watches(watches_dir)} if watches_dir.is_dir() else {}
    store = open_store(args, settings=settings)
    try:
        html = report(store, names, settings.feeds, watch=args.watch, since=since)
    finally:
        store.close()
    args.html.write_text(html, encoding="utf-8")
    log.info("report written to %s (%d bytes)", args.html, len(html.encode()))
    return 0


def terminal_safe(text: str) -> str:
    """Article text on a terminal: control characters (escape sequences) shown, not obeyed."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def cmd_rules(args: argparse.Namespace) -> int:
    from monitor.alerting.rules import RuleError, load_rules
    from monitor.watches import WatchError, load_watches

    problems: list[str] = []
    watches_dir, alerts_dir = args.dir / "watches", args.dir / "alerts"
    if not args.dir.is_dir():
        raise UsageError(f"{args.dir}: not a directory")
    try:
        watches = load_watches(watches_dir) if watches_dir.is_dir() else []
    except WatchError as exc:
        problems.extend(exc.problems)
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
                    problems.append(
                        f"rule {rule.id!r}: unknown watch {w!r} (known: {sorted(known)})"
                    )
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"ok: {len(watches)} watches, {len(rules.rules) if rules else 0} rules")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from monitor.store.projections import all_projections, rebuild

    store = open_store(args, "change")
    try:
        for projection in all_projections():
            count = rebuild(store, projection)
            print(f"{projection.name}: replayed {count} events", file=sys.stderr)
        return 0
    finally:
        store.close()


def cmd_status(args: argparse.Namespace) -> int:
    """The shared database's view (feeds, lag, outbox), plus what a local daemon says."""
    from rich.table import Table

    from monitor.status import ask_daemon, status_snapshot
    from monitor.store.db import describe

    settings = settings_from(args)
    store = open_store(args, settings=settings)
    try:
        status = status_snapshot(store, settings.feeds)
    finally:
        store.close()
    status["database"] = describe(settings.db)
    answer = ask_daemon(settings.http_listen, "GET", "/healthz")
    status["daemon"] = answer[1] if answer and isinstance(answer[1], dict) else None
    if args.format == "jsonl":
        emit(status)
        return 0
    out = console()
    out.print(f"database {status['database']} ({db_source(args)})")
    daemon = status["daemon"]
    if daemon:
        state = "ready" if daemon.get("ready") else "not ready"
        replica = daemon.get("replica")
        out.print(f"daemon at {settings.http_listen}: {state} (replica {replica})")
        queue = daemon.get("queue")
        if isinstance(queue, dict):
            out.print(
                f"poll queue: {queue.get('feeds')} feeds, {queue.get('due')} due now, "
                f"oldest due {queue.get('oldest_due_age')} s ago"
            )
    else:
        out.print(f"daemon: none answering at {settings.http_listen or '(http_listen off)'}")
    outbox = ", ".join(f"{k} {v}" for k, v in sorted(status["outbox"].items())) or "empty"
    last = status["last_poll"] or "-"
    out.print(f"log head {status['head']}; outbox: {outbox}; last poll {last}")
    out.print("lag: " + (", ".join(f"{k}={v}" for k, v in status["lag"].items()) or "-"))
    table = Table(
        "feed", "last poll", "last success", "next due", "by", "fails", "items", "last error"
    )
    for f in status["feeds"]:
        table.add_row(
            f["feed"],
            _clock(f["last_poll"]),
            _clock(f["last_success"]),
            _clock(f["next_due"]),
            f["leased_by"] or f["polled_by"] or "-",
            str(f["consecutive_failures"]),
            str(f["last_items"]),
            (f["last_error"] or "")[:80],
        )
    out.print(table)
    return 0


def _clock(iso: str | None) -> str:
    """Month, day and time in UTC: narrow enough for a status table on an 80-column terminal."""
    return iso[5:19].replace("T", " ") if iso else "-"


def cmd_poll(args: argparse.Namespace) -> int:
    """Poll one feed now. A running daemon (at ``http_listen``) does it on its own schedule's
    terms; with none answering, or ``--alone``, this process polls under the feed's lease."""
    from monitor.runtime import Runtime
    from monitor.status import ask_daemon

    settings = settings_from(args)
    feed = next((f for f in settings.feeds if f.name == args.feed), None)
    if feed is None:
        known = ", ".join(f.name for f in settings.feeds) or "none"
        raise UsageError(f"no feed named {args.feed!r} in the configuration (feeds: {known})")
    answer = None if args.alone else ask_daemon(settings.http_listen, "POST", f"/poll/{feed.name}")
    if answer is not None:
        code, body = answer
        message = body.get("message", body) if isinstance(body, dict) else body
        if args.format == "jsonl":
            emit({"feed": feed.name, "via": "daemon", "status": code, "message": message})
        else:
            print(message)
        return 0 if code < 300 else 1
    runtime = Runtime(settings)
    try:
        runtime.leases.ensure([feed])
        run = runtime.run_feed(feed, force=True)
        if run is None:
            print(f"monitor: another replica is polling {feed.name} now", file=sys.stderr)
            return 1
        alerts = runtime.advance()
        runtime.deliver()
    finally:
        runtime.close()
    o = run.outcome
    row = {
        "feed": feed.name,
        "via": "alone",
        "ok": o.ok,
        "not_modified": o.not_modified,
        "items": o.items,
        "new_items": o.new_items,
        "extracted": sum(1 for r in run.results if r.status == "extracted"),
        "alerts": len(alerts),
        "error": o.error,
    }
    if args.format == "jsonl":
        emit(row)
    elif o.ok:
        print(
            f"{feed.name}: "
            + ("not modified" if o.not_modified else f"{o.items} items, {o.new_items} new")
            + f", {row['extracted']} extracted, {len(alerts)} alerts"
        )
    else:
        print(f"{feed.name}: failed: {o.error}")
    return 0 if o.ok else 1


# --- db, events export/import (logic in monitor/store/migrate.py and transfer.py) ---------------


def cmd_db(args: argparse.Namespace) -> int:
    from monitor.store import migrate
    from monitor.store.db import check_owner, make_engine, redact, sqlite_path

    url = settings_from(args).db
    path = sqlite_path(url)
    if args.action == "current" and path is not None and not path.exists():
        print(f"empty (no database at {path}; {db_source(args)})")
        return 0
    check_owner(url)
    engine = make_engine(url, read_only=args.action == "current")
    try:
        if args.action == "upgrade":
            before = migrate.current_revision(engine)
            after = migrate.upgrade(engine, args.revision)
            print(f"{redact(url)}: schema {before or 'empty'} -> {after}", file=sys.stderr)
        else:
            print(migrate.current_revision(engine) or "empty")
        return 0
    finally:
        engine.dispose()


def cmd_events_transfer(args: argparse.Namespace) -> int:
    from monitor.store.transfer import export_jsonl, import_jsonl

    store = open_store(args, "read" if args.action == "export" else "create")
    try:
        path = Path(args.id) if args.id and args.id != "-" else None
        if args.action == "export":
            if path is None:
                result = export_jsonl(store, sys.stdout, after=args.after)
            else:
                with path.open("w", encoding="utf-8") as out:
                    result = export_jsonl(store, out, after=args.after)
            print(f"exported {result.written} events (last seq {result.head})", file=sys.stderr)
        else:
            if path is not None and not path.exists():
                raise UsageError(f"{path}: no such file")
            with path.open(encoding="utf-8") if path else sys.stdin as lines:
                result = import_jsonl(store, lines)
            from monitor.notify.admin import restore_outbox

            restored = restore_outbox(store)
            print(
                f"imported {result.written} events, {result.skipped} already present "
                f"(head {result.head}); {restored} outbox rows restored from the log",
                file=sys.stderr,
            )
        return 0
    finally:
        store.close()


# --- rules test/backtest/explain, alerts explain, silence (logic in monitor/alerting/commands.py)


def cmd_rules_main(args: argparse.Namespace) -> int:
    if args.action == "check":  # loads the rules alone: none of the evaluator
        args.dir = Path(args.dir[0]) if args.dir else Path("rules")
        return cmd_rules(args)
    from monitor.alerting import commands
    from monitor.alerting.backtest import parse_when

    if args.action == "test":
        paths = [Path(p) for p in args.dir] or [Path("rules/tests")]
        return commands.rules_test(paths, sys.stdout, sys.stderr)
    if args.action == "explain" and (len(args.dir) != 1 or not args.event):
        raise UsageError("usage: monitor rules explain RULE --event EVENT_ID")
    rules = commands.load_alert_rules(args.rules or settings_from(args).rules_dir)
    store = open_store(args)
    try:
        if args.action == "explain":
            rule_id, out, err = args.dir[0], sys.stdout, sys.stderr
            return commands.rules_explain(store, rules, rule_id, args.event, out, err)
        now = datetime.now(UTC)
        try:
            since = parse_when(args.since, now) if args.since else None
            until = parse_when(args.until, now) if args.until else None
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        against = commands.load_alert_rules(args.against) if args.against else None
        return commands.rules_backtest(
            store, rules, against=against, since=since, until=until, fmt=args.format, out=sys.stdout
        )
    finally:
        store.close()


def cmd_alerts_main(args: argparse.Namespace) -> int:
    from monitor.alerting import commands
    from monitor.alerting.rules import RuleError

    if args.action == "retry":
        return cmd_alerts_retry(args)
    if args.action != "explain":
        return cmd_alerts(args)
    if not args.id:
        raise UsageError("usage: monitor alerts explain ALERT_ID")
    rules_dir = args.rules or settings_from(args).rules_dir
    try:
        rules = commands.load_alert_rules(rules_dir)
    except RuleError:
        rules = None  # explaining needs only the log; the rule check is a bonus
    store = open_store(args)
    try:
        return commands.alerts_explain(store, args.id, rules, sys.stdout, sys.stderr)
    finally:
        store.close()


def cmd_silence(args: argparse.Namespace) -> int:
    from monitor.alerting import commands

    store = open_store(args, "read" if args.action == "list" else "change")
    now = datetime.now(UTC)  # a silence is an operator action: it starts on the wall clock
    try:
        if args.action == "add":
            warn_unmatched_silence(args)
            return commands.silence_add(
                store,
                args.match,
                args.duration,
                now=now,
                comment=args.comment,
                author=args.author,
                fmt=args.format,
                out=sys.stdout,
                err=sys.stderr,
            )
        if args.action == "list":
            return commands.silence_list(
                store, now=now, include_expired=args.all, fmt=args.format, out=sys.stdout
            )
        if not args.id:
            raise UsageError("usage: monitor silence expire SILENCE_ID")
        return commands.silence_expire(store, args.id, now=now, out=sys.stdout, err=sys.stderr)
    finally:
        store.close()


def warn_unmatched_silence(args: argparse.Namespace) -> None:
    """Warn (and still add) when no known rule could ever carry labels the matchers accept:
    a typo in ``--match rule=casualty-jmup`` would otherwise silence nothing, silently."""
    from monitor.alerting import commands
    from monitor.alerting.rules import RuleError
    from monitor.alerting.silences import Silence, SilenceError, parse_matcher
    from monitor.config import ConfigError
    from monitor.watches import WatchError, load_watches

    try:
        matchers = tuple(parse_matcher(m) for m in args.match)
        rules_dir = settings_from(args).rules_dir
        rules = commands.load_alert_rules(rules_dir).rules
    except (SilenceError, RuleError, ConfigError, UsageError, OSError):
        return  # silence_add reports a bad matcher; without rules there is nothing to check
    if not matchers or any(m.name == "dedup_key" for m in matchers):
        return  # a dedup key is made per alert: no rule list can say it never matches
    try:
        watches = [w.id for w in load_watches(rules_dir / "watches")] or [""]
    except (WatchError, OSError):
        watches = [""]
    probe = Silence("probe", matchers, datetime.now(UTC), datetime.now(UTC))
    for rule in rules:
        static = {**rule.labels, "rule": rule.id, "type": rule.type, "severity": rule.severity}
        static["event"] = rule.event
        for watch in rule.watches or watches:
            for status in ("firing", "resolved"):
                if probe.matches({**static, "watch": watch, "status": status}):
                    return
    known = ", ".join(sorted(r.id for r in rules))
    print(
        f"monitor: warning: no rule in {rules_dir} matches {' '.join(args.match)} "
        f"(rules: {known}); the silence is added but will mute nothing they raise",
        file=sys.stderr,
    )


# --- notify test, alerts retry (logic in monitor/notify/admin.py) ------------------------------


def cmd_notify(args: argparse.Namespace) -> int:
    from monitor.notify.admin import send_test_messages
    from monitor.notify.channels import build_channels

    settings = settings_from(args)
    channels, warnings = build_channels(settings.channels, args.notify)
    for warning in warnings:
        log.warning(warning)
    known = {c.name for c in channels}
    unknown = [n for n in args.channels if n not in known]
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise UsageError(f"unknown channel {names} (known: {sorted(known)})")
    chosen = [c for c in channels if not args.channels or c.name in args.channels]
    if not chosen:
        raise UsageError("no channel to test: configure [[channels]] or give --notify URL")
    results = send_test_messages(chosen)
    for r in results:
        if args.format == "jsonl":
            emit(r.model_dump(mode="json"))
        else:
            outcome = f"ok ({r.latency_ms} ms)" if r.ok else f"FAILED: {r.error}"
            print(f"{r.channel}\t{r.target}\t{outcome}")
    return 0 if all(r.ok for r in results) else 1


def cmd_alerts_retry(args: argparse.Namespace) -> int:
    from monitor.notify.admin import RequeueError, requeue

    if not args.id:
        raise UsageError("usage: monitor alerts retry ALERT_ID [--channel NAME]")
    store = open_store(args, "change")
    try:
        try:
            states = requeue(store, args.id, args.channel)
        except RequeueError as exc:
            raise UsageError(str(exc)) from None
    finally:
        store.close()
    for state in states:
        if args.format == "jsonl":
            emit({"id": args.id, **state.model_dump(mode="json")})
        else:
            print(f"re-queued {args.id} to {state.channel} (after {state.attempts} attempts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
