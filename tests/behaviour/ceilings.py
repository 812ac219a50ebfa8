"""The ratchet: per capability, the failure rate the suite may not exceed.

The figures live in `ceilings.json` beside this file: today's rate rounded up to the next whole
percent. A change that lowers a rate may lower its ceiling (`bench/checklist_report.py
--ratchet` does it); no change may raise one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

PATH = Path(__file__).with_name("ceilings.json")
TARGET = 0.03  # issue 11: under 3% failures for every capability


def load() -> dict[str, float]:
    return json.loads(PATH.read_text(encoding="utf-8"))


def rounded_up(rate: float) -> float:
    """A rate as a ceiling: the next whole percent at or above it."""
    return math.ceil(round(rate * 100, 6)) / 100


def ratchet(rates: dict[str, float]) -> dict[str, float]:
    """Ceilings lowered to today's rates where they fell; never raised; new capabilities added."""
    old = load() if PATH.exists() else {}
    new = {cap: min(old.get(cap, 1.0), rounded_up(rate)) for cap, rate in sorted(rates.items())}
    PATH.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return new
