"""Settings: the TOML file, then MONITOR_* environment variables, then command-line flags.

This is the one place that knows every setting. Relative paths in the file are resolved
against the file's own directory, so a config works from any working directory.
"""

from __future__ import annotations

import os
import re
from datetime import time as dt_time
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from monitor.durations import parse_duration

DEFAULT_CONFIG = "config.example.toml"


def positive_duration(value: str | int | float | timedelta) -> timedelta:
    """A duration that must be longer than zero: an interval or a timeout of 0 means never."""
    duration = parse_duration(value)
    if duration <= timedelta(0):
        raise ValueError(f"must be longer than 0 (got {value!r})")
    return duration


def _optional_positive(value: Any) -> timedelta | None:
    return None if value is None else positive_duration(value)


_LISTEN = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):(?P<port>\d{1,5})$")


def check_listen(value: str) -> str:
    """``host:port`` (``[::1]:9311`` for IPv6; an empty host is loopback) or "" for off."""
    if value == "":
        return value
    match = _LISTEN.match(value.strip())
    if not match or not 0 < int(match["port"]) < 65536:
        raise ValueError(f'not host:port: {value!r} (e.g. 127.0.0.1:9311, or "" for off)')
    return value.strip()


class FeedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    url: str
    outlet: str | None = None
    interval: timedelta = timedelta(minutes=10)
    # Random delay added to each scheduled poll (default: a tenth of the interval), so that
    # feeds of one host and replicas of one cluster do not poll in lockstep.
    jitter: timedelta | None = None
    # How long the feed may publish nothing new before a "source health" alert says it went
    # silent (off when unset). A failing feed alerts after this long, or 3 intervals if unset.
    expected_period: timedelta | None = None
    # A local feed file's items may link to files inside this directory only (default: the
    # feed file's own directory). Links of feeds read over http(s) never read files.
    files_under: Path | None = None

    _d = field_validator("interval", mode="before")(positive_duration)
    _j = field_validator("jitter", mode="before")(
        lambda v: None if v is None else parse_duration(v)
    )
    _o = field_validator("expected_period", mode="before")(_optional_positive)

    def jitter_seconds(self) -> float:
        if self.jitter is not None:
            return max(0.0, self.jitter.total_seconds())
        return self.interval.total_seconds() / 10

    def failure_period(self) -> timedelta:
        """How long the feed may keep failing before a source health alert is raised."""
        return self.expected_period or 3 * self.interval

    def file_root(self) -> Path | None:
        """Where this feed's file: links may point: None unless the feed is a local file."""
        if not self.url.lower().startswith("file:"):
            return None
        if self.files_under is not None:
            return self.files_under
        return Path(unquote(urlparse(self.url).path)).parent


class RateLimit(BaseModel):
    """At most ``count`` messages per ``per`` on one channel; written ``"10/1h"`` or ``"5/m"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(ge=1)
    per: timedelta

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            count, sep, per = value.partition("/")
            if not sep or not count.strip().isdigit():
                raise ValueError(f"not a rate limit: {value!r} (use e.g. 10/1h or 5/m)")
            per = per.strip()
            return {"count": int(count), "per": f"1{per}" if per.isalpha() else per}
        return value

    _d = field_validator("per", mode="before")(positive_duration)


class ChannelConfig(BaseModel):
    """Where alerts go: an Apprise URL given inline, by environment variable, or by file.

    ``group_wait`` and ``group_interval`` batch alerts Alertmanager style: the first alert queued
    for the channel waits ``group_wait`` for company, and a channel that just sent waits
    ``group_interval`` before the next message; whatever is queued by then goes out as one
    message. ``rate_limit`` caps messages per period. A ``health`` channel is told once about
    each delivery that was given up.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    url: str | None = Field(default=None, repr=False)  # may hold a password or token
    url_env: str | None = None
    url_file: Path | None = None
    tags: list[str] = Field(default_factory=lambda: ["all"])
    format: Literal["text", "markdown", "html"] = "text"
    rate_limit: RateLimit | None = None
    group_wait: timedelta = timedelta(0)
    group_interval: timedelta = timedelta(0)
    health: bool = False

    _d = field_validator("group_wait", "group_interval", mode="before")(parse_duration)

    @model_validator(mode="after")
    def _one_source(self) -> ChannelConfig:
        given = [x for x in (self.url, self.url_env, self.url_file) if x]
        if len(given) != 1:
            raise ValueError(f"channel {self.name!r}: give exactly one of url, url_env, url_file")
        return self

    def resolve_url(self) -> str | None:
        """The Apprise URL, or None when its secret source is not set on this machine."""
        if self.url:
            return self.url
        if self.url_env:
            return os.environ.get(self.url_env) or None
        assert self.url_file is not None
        try:
            return self.url_file.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None


class FetchConfig(BaseModel):
    """HTTP politeness and limits (``[fetch]`` in the file, ``MONITOR_FETCH__*`` in the env)."""

    model_config = ConfigDict(extra="forbid")

    connect_timeout: timedelta = timedelta(seconds=10)
    read_timeout: timedelta = timedelta(seconds=20)
    total_timeout: timedelta = timedelta(seconds=60)
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    per_host: int = Field(default=2, ge=1)
    user_agent: str | None = None
    # Failing feeds back off exponentially (interval x 2^(failures-1)) up to this.
    max_backoff: timedelta = timedelta(hours=6)
    # Links found in feeds, and redirects, may reach public addresses only, plus these
    # networks (CIDRs such as "10.1.0.0/16"). Configured feed URLs are always reachable.
    allow_networks: list[IPvAnyNetwork] = Field(default_factory=list)

    _d = field_validator(
        "connect_timeout", "read_timeout", "total_timeout", "max_backoff", mode="before"
    )(positive_duration)


class DeliveryConfig(BaseModel):
    """Retries of failed deliveries (``[delivery]``, ``MONITOR_DELIVERY__*``): backoff from
    ``retry_base`` doubling to ``retry_cap``, given up after ``max_age``. ``lease`` bounds how
    long a worker may hold a delivery: it must exceed the longest send."""

    model_config = ConfigDict(extra="forbid")

    retry_base: timedelta = timedelta(seconds=5)
    retry_cap: timedelta = timedelta(minutes=30)
    max_age: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(minutes=2)
    # A page that explains one alert, "{id}" replaced by the alert id; JSON webhooks carry it
    # as "explain.url" (the command "monitor alerts explain ID" is always there).
    explain_url: str | None = None

    _d = field_validator("retry_base", mode="before")(parse_duration)
    _p = field_validator("retry_cap", "max_age", "lease", mode="before")(positive_duration)


class DigestConfig(BaseModel):
    """The daily digest (``[digest]``): one message a day per watch, sent at ``at`` (UTC,
    "HH:MM") to the named channels, saying what the watch learned that day. Off with no
    channels."""

    model_config = ConfigDict(extra="forbid")

    channels: list[str] = Field(default_factory=list)
    at: dt_time = dt_time(7, 0)

    @field_validator("at", mode="before")
    @classmethod
    def _clock(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return dt_time.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"not a time of day: {value!r} (use HH:MM, UTC)") from exc
        return value


class WebConfig(BaseModel):
    """The dashboard (``[web]``, ``MONITOR_WEB__*``), served on ``http_listen``. Loopback
    clients need nothing; others must send ``token`` (bearer, or the Basic password), and
    without one the dashboard answers loopback only."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    token: str | None = Field(default=None, repr=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", extra="forbid", env_nested_delimiter="__"
    )

    db: str = "sqlite:///monitor.db"
    rules_dir: Path = Path("rules")
    log_level: str = "INFO"
    log_format: str = "plain"
    deliver_interval: timedelta = timedelta(seconds=2)
    feeds: list[FeedConfig] = Field(default_factory=list)
    channels: list[ChannelConfig] = Field(default_factory=list)
    # --- the daemon (monitor/daemon.py): health endpoint, replicas, shutdown, fetching -----
    # host:port of /healthz, /metrics and POST /poll/FEED; loopback only unless changed. "" = off.
    http_listen: str = "127.0.0.1:9311"
    # This process's name in lease tables and logs; default host:pid.
    replica_id: str | None = None
    # A feed being polled is leased for this long (renewed as the poll goes on); a replica that
    # dies mid-poll holds its feed at most this long.
    lease_period: timedelta = timedelta(minutes=2)
    health_check_interval: timedelta = timedelta(seconds=30)
    # SIGTERM: time allowed for in-flight polls and the last outbox flush before exiting.
    stop_timeout: timedelta = timedelta(seconds=8)
    poll_workers: int = Field(default=4, ge=1)
    # Processes that read text and facts while the poll threads fetch and one writer appends:
    # default one per core; 0 or 1 reads them on the poll threads themselves.
    cpu_workers: int | None = Field(default=None, ge=0)
    # CPU time one article's extraction may take; past it the article is recorded as failed.
    extract_budget: timedelta = timedelta(seconds=5)
    fetch: FetchConfig = Field(default_factory=lambda: FetchConfig())
    delivery: DeliveryConfig = Field(default_factory=lambda: DeliveryConfig())
    digest: DigestConfig = Field(default_factory=lambda: DigestConfig())
    web: WebConfig = Field(default_factory=lambda: WebConfig())

    _d = field_validator(
        "deliver_interval",
        "lease_period",
        "health_check_interval",
        "stop_timeout",
        "extract_budget",
        mode="before",
    )(positive_duration)
    _l = field_validator("http_listen", mode="before")(check_listen)

    @model_validator(mode="after")
    def _digest_channels_exist(self) -> Settings:
        known = {c.name for c in self.channels}
        unknown = [name for name in self.digest.channels if name not in known]
        if unknown:
            raise ValueError(f"digest.channels: no channel named {', '.join(unknown)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init) beat the environment, which beats the file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


class ConfigError(ValueError):
    """The config file or an override is invalid; the message names the file."""


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (or $MONITOR_CONFIG), apply env and flag overrides, resolve paths."""
    chosen = path or os.environ.get("MONITOR_CONFIG")
    config_path = Path(chosen) if chosen else None
    flags = {k: v for k, v in overrides.items() if v is not None}
    if config_path is not None and not config_path.is_file():
        raise ConfigError(f"{config_path}: no such config file")

    class FileSettings(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config_path})

    where = config_path or "settings"
    try:
        settings: Settings = FileSettings(**flags)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {validation_problems(exc)}") from exc
    except Exception as exc:  # TOML syntax
        raise ConfigError(f"{where}: {exc}") from exc
    base = config_path.resolve().parent if config_path else Path.cwd()
    return _resolve_paths(settings, base, flags)


def validation_problems(exc: ValidationError) -> str:
    """Pydantic's errors as "key: problem" lines, named as in the file (``feeds[0].interval``)."""
    lines = []
    for error in exc.errors(include_url=False):
        key = ""
        for part in error["loc"]:
            key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"{key or 'settings'}: {message}")
    return "; ".join(lines)


def _resolve_paths(settings: Settings, base: Path, flags: dict[str, Any]) -> Settings:
    rules_dir = (
        settings.rules_dir if settings.rules_dir.is_absolute() else base / settings.rules_dir
    )
    db = settings.db
    if "db" not in flags and db.startswith("sqlite:///") and not db.startswith("sqlite:////"):
        rel = db.removeprefix("sqlite:///")
        if rel and rel != ":memory:":
            db = f"sqlite:///{(base / rel).resolve()}"
    feeds = [
        f.model_copy(
            update={
                "url": resolve_location(f.url, base),
                "files_under": base / f.files_under if f.files_under else None,
            }
        )
        for f in settings.feeds
    ]
    channels = [
        c.model_copy(update={"url_file": base / c.url_file})
        if c.url_file and not c.url_file.is_absolute()
        else c
        for c in settings.channels
    ]
    return settings.model_copy(
        update={"rules_dir": rules_dir, "db": db, "feeds": feeds, "channels": channels}
    )


def resolve_location(url: str, base: Path) -> str:
    """A feed location as a URL: http(s) and file URLs stay, bare paths become file:// URLs."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        return url
    path = Path(url)
    return (path if path.is_absolute() else base / path).resolve().as_uri()
