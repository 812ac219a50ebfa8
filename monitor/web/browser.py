"""How the project starts headless Chromium: one place for the flags, used by the browser test
and by docs/screenshot.py, so the picture in the README and the test see the same browser.

Debian's build (``apt-get install chromium chromium-driver``), since browser downloads from
elsewhere are not relied on. The flags keep it from reaching the network on its own (updates,
sync, first-run pages) and let it run as root in a container (no sandbox, no /dev/shm).
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def chromium_flags(profile: Path, window: tuple[int, int] = (1300, 1800)) -> list[str]:
    """Command-line flags for a fresh headless Chromium with its own profile directory."""
    width, height = window
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ]
