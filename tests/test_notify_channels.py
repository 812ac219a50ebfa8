"""Channels from the config, the environment, files and --notify; secrets kept out of output."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import ChannelConfig
from monitor.logs import RedactingFilter
from monitor.notify.admin import delivery_states, send_test_messages
from monitor.notify.channels import Channel, build_channels
from monitor.notify.outbox import Deliverer, RetryPolicy
from monitor.store.log import EventStore
from tests.support.httpserver import Reply, TestServer
from tests.support.notify_helpers import (
    free_port,
    host_of,
    make_alert,
    posts,
    queue,
    rows,
)

# --- channels, secrets ----------------------------------------------------------------------


def test_channels_from_config_env_file_and_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", "json://127.0.0.1:9/x")
    secret_file = tmp_path / "url"
    secret_file.write_text("mmost://127.0.0.1:9/filetoken\n")
    configs = [
        ChannelConfig(name="env", url_env="HOOK_URL", group_wait="30s", group_interval="5m"),
        ChannelConfig(name="file", url_file=secret_file, format="markdown", rate_limit="5/m"),
        ChannelConfig(name="ops", url="console://", tags=[], health=True),
        ChannelConfig(name="unset", url_env="NOT_SET_ANYWHERE"),
        ChannelConfig(name="bogus", url="nosuchscheme://x"),
    ]
    channels, warnings = build_channels(configs, ["console://"])
    by_name = {c.name: c for c in channels}
    assert list(by_name) == ["env", "file", "ops", "notify-1"]
    assert by_name["env"].grouped and by_name["env"].group_interval == timedelta(minutes=5)
    assert by_name["file"].rate_limit is not None and by_name["file"].rate_limit.count == 5
    assert by_name["file"].format == "markdown" and by_name["file"].url.endswith("filetoken")
    assert by_name["ops"].health and by_name["notify-1"].tags == ["*"]
    assert any("NOT_SET_ANYWHERE" in w for w in warnings) and any("bogus" in w for w in warnings)
    with pytest.raises(ValueError, match="format"):
        ChannelConfig(name="x", url="json://h", format="rtf")
    with pytest.raises(ValueError, match="rate limit"):
        ChannelConfig(name="x", url="json://h", rate_limit="often")


SECRETS = {
    "password": "s3cr3t-Pa55",
    "mm_token": "mmTokenZ9x8c7v6",
    "ntfy_token": "tk_ntfySecret42",
    "basic": "b4sic-auth-pw",
}


def test_secrets_never_reach_events_logs_rows_reports_or_bodies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, web: TestServer
) -> None:
    web.route("/health", Reply(200, b"{}"))
    web.route(f"/hooks/{SECRETS['mm_token']}", Reply(500, b"no"))
    web.route("/basic", Reply(401, b"no"))
    host = host_of(web)
    channels = [
        Channel(
            name="mail",
            url=f"mailtos://user:{SECRETS['password']}@127.0.0.1:{free_port()}?to=a@example.org",
            tags=["all"],
        ),
        Channel(name="mm", url=f"mmost://{host}/{SECRETS['mm_token']}", tags=["all"]),
        Channel(
            name="ntfy", url=f"ntfy://{host}/topic?token={SECRETS['ntfy_token']}", tags=["all"]
        ),
        Channel(name="basic", url=f"json://admin:{SECRETS['basic']}@{host}/basic", tags=["all"]),
        Channel(name="ops", url=f"json://{host}/health", tags=[], health=True),
    ]
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    queue(store, make_alert(), ["mail", "mm", "ntfy", "basic"])
    raw: list[str] = []  # what Apprise logs before our filter sees it

    class Raw(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raw.append(record.getMessage())

    apprise_log, tap = logging.getLogger("apprise"), Raw()
    apprise_log.addHandler(tap)
    caplog.handler.addFilter(RedactingFilter())  # the filter monitor.logs puts on its handler
    caplog.set_level("DEBUG")  # Apprise's debug lines print request URLs
    caplog.set_level("DEBUG", logger="apprise")  # whatever an earlier setup_logging left
    try:
        policy = RetryPolicy(base=timedelta(0), cap=timedelta(0), max_age=timedelta(0))
        deliverer = Deliverer(store, channels, policy)
        deliverer.run_once()
        deliverer.run_once()
        results = send_test_messages(channels)
    finally:
        apprise_log.removeHandler(tap)
    assert [r.ok for r in results] == [False, False, False, False, True]
    assert len(posts(web, "/health")) == 4 + 1  # one report per given-up delivery, one test
    assert any(SECRETS["mm_token"] in line for line in raw)  # so the filter is what hides it
    dumped = "\n".join(
        [
            json.dumps([e.to_json() for e in store.read()]),
            caplog.text,
            str([(r.last_error, r.lease_owner) for r in rows(store)]),
            str([s.describe() for v in delivery_states(store).values() for s in v]),
            *(r.model_dump_json() for r in results),
            *(r.body.decode() for r in web.requests),
            *(c.safe_url() for c in channels),
            repr(channels),  # a channel in a log line or traceback shows no URL
        ]
    )
    assert [name for name, s in SECRETS.items() if s in dumped] == []
    assert "401" in dumped and "500" in dumped  # the errors themselves are kept
