"""Hot reload of rule files: notice changes by their modification times, keep the last good set.

The daemon polls ``RuleReloader.poll()`` from its main loop (and calls ``reload()`` on
SIGHUP). An invalid new rule set never replaces a working one: the reloader keeps the last
good set and reports every problem, naming file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.alerting.rules import RuleError, RuleSet, load_rules

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


@dataclass
class ReloadResult:
    changed: bool
    rules: RuleSet
    error: str | None = None

    @property
    def message(self) -> str:
        if self.error:
            kept = len(self.rules.rules)
            return f"rule reload failed, keeping the previous {kept} rules:\n{self.error}"
        if self.changed:
            return f"reloaded {len(self.rules.rules)} rules (digest {self.rules.digest})"
        return "rules unchanged"


class RuleReloader:
    """Holds the last good rule set of one directory."""

    def __init__(self, directory: Path, rules: RuleSet | None = None) -> None:
        self.directory = directory
        self.seen = snapshot(directory)
        self.rules = rules if rules is not None else load_rules(directory)

    def poll(self) -> ReloadResult | None:
        """None when no file changed since the last look; else the outcome of a reload."""
        current = snapshot(self.directory)
        if current == self.seen:
            return None
        return self.reload(current)

    def reload(self, current: Snapshot | None = None) -> ReloadResult:
        self.seen = current if current is not None else snapshot(self.directory)
        try:
            rules = load_rules(self.directory)
        except RuleError as exc:
            return ReloadResult(False, self.rules, str(exc))
        changed = rules.digest != self.rules.digest
        self.rules = rules
        return ReloadResult(changed, rules)
