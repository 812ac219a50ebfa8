"""Draw docs/watch-page.png: the seeds replayed, the dashboard served, Chromium's screenshot.

Run from the repository root with the project's venv: ``.venv/bin/python docs/screenshot.py``
(optionally an output path). It needs Debian's ``chromium``; nothing leaves 127.0.0.1. The
README's picture is made this way so it shows what the code draws today.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from monitor.observability import Endpoints, Metrics, ObservabilityServer
from monitor.store.log import EventStore
from monitor.watches import load_watches
from monitor.web.app import WebUI
from monitor.web.browser import CHROMIUM, chromium_flags

ROOT = Path(__file__).resolve().parent.parent
WATCH = "nagorno-karabakh"


def main(out: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="monitor-shot") as tmp:
        url = f"sqlite:///{Path(tmp) / 'seeds.db'}"
        replay = [sys.executable, "-m", "monitor.cli", "replay", "seeds", "--db", url]
        subprocess.run(replay, cwd=ROOT, check=True, capture_output=True)
        names = {w.id: w.name for w in load_watches(ROOT / "rules" / "watches")}
        store = EventStore(url, read_only=True)
        web = WebUI(store, lambda: [], lambda: names)
        endpoints = Endpoints(Metrics(), lambda: (True, {}), lambda _feed: (404, "no"), web)
        server = ObservabilityServer("127.0.0.1:0", endpoints).start()
        try:
            subprocess.run(
                [
                    str(CHROMIUM),
                    *chromium_flags(Path(tmp) / "profile", window=(1280, 1500)),
                    f"--screenshot={out.resolve()}",
                    f"http://{server.address}/watch/{WATCH}",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        finally:
            server.stop()
            store.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "watch-page.png"))
