"""Durations as people write them in config and rule files ('90s', '15m', '6h', '7d').

Kept apart from ``monitor.config`` so that reading a rule file does not import the settings
machinery (pydantic-settings), which would slow every `monitor rules check`.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """'90s', '15m', '6h', '7d' or a number of seconds (``true`` is not a number of seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 6h, 7d)")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 6h, 7d)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])
