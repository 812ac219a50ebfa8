"""Hot reload of rule files: notice changes by their names, modification times and sizes.

The daemon compares snapshots of ``rules/watches`` and ``rules/alerts`` from its main loop and,
on any change (or SIGHUP), reloads through ``Runtime.reload``, which validates everything
before swapping anything: an invalid new rule set never replaces a working one.
"""

from __future__ import annotations

from pathlib import Path

Snapshot = tuple[tuple[str, int, int], ...]


def snapshot(directory: Path) -> Snapshot:
    """Name, mtime and size of every rule file: any edit, addition or removal changes it."""
    files = []
    for path in sorted(directory.glob("*.y*ml")):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue  # removed between glob and stat: the next poll sees it gone
        files.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(files)
