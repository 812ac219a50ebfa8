"""Watches: which conflicts to follow, who their parties are, and which sides they form.

A watch is shared by extraction (who is a primary party, and so who is a third party) and by
alerting (rules are scoped to watches), so it lives beside the event schema, not in either stage.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class Party(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    aliases: list[str] = Field(default_factory=list)


class Watch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    parties: dict[str, Party]
    sides: dict[str, list[str]] = Field(default_factory=dict)
    keywords: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sides_name_parties(self) -> Watch:
        for side, codes in self.sides.items():
            unknown = [c for c in codes if c not in self.parties]
            if unknown:
                raise ValueError(f"side {side!r} names unknown parties {unknown}")
        return self

    def side_of(self, code: str | None) -> str | None:
        """The side a party belongs to, or None when the watch does not say."""
        if code is None:
            return None
        for side, codes in self.sides.items():
            if code in codes:
                return side
        return None

    def is_party(self, code: str | None) -> bool:
        return code is not None and code in self.parties

    def names(self) -> dict[str, str]:
        """Every surface form (name, alias) of each party, mapped to its code."""
        out: dict[str, str] = {}
        for code, party in self.parties.items():
            for form in (party.name, *party.aliases):
                out[form] = code
        return out

    def is_relevant(self, text: str) -> bool:
        """An article is relevant when it names a keyword, or, without keywords, a party."""
        terms = self.keywords or list(self.names())
        return any(_word_re(t).search(text) for t in terms)


def _word_re(term: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(term) + r"(?!\w)", re.IGNORECASE)


class WatchError(ValueError):
    """A watch file that cannot be used, with the file named."""


def load_watch(path: Path) -> Watch:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise WatchError(f"{path}: {exc}") from exc
    try:
        return Watch.model_validate(raw)
    except ValidationError as exc:
        raise WatchError(f"{path}: {exc}") from exc


def load_watches(directory: Path) -> list[Watch]:
    watches = [load_watch(p) for p in sorted(directory.glob("*.y*ml"))]
    ids = [w.id for w in watches]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise WatchError(f"{directory}: duplicate watch ids {sorted(dupes)}")
    return watches
