"""Watches: which conflicts to follow, who their parties are, and which sides they form.

A watch is shared by extraction (who is a primary party, and so who is a third party) and by
alerting (rules are scoped to watches), so it lives beside the event schema, not in either stage.
"""

from __future__ import annotations

import difflib
import re
from functools import cache
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
        return _terms_re(tuple(self.keywords or self.names())).search(text) is not None


@cache
def _terms_re(terms: tuple[str, ...]) -> re.Pattern[str]:
    """Any of the terms as a whole word: one pattern, compiled once per watch."""
    words = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(r"(?<!\w)(?:" + words + r")(?!\w)", re.IGNORECASE)


class WatchError(ValueError):
    """Watch files that cannot be used: one problem a line, each ``file:line:column: field:
    message`` like rule errors."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_WATCH_KEYS = {"": sorted(Watch.model_fields), "party": sorted(Party.model_fields)}


def load_watch(path: Path) -> Watch:
    from monitor.alerting.rules import parse_yaml, position

    try:
        text = path.read_text(encoding="utf-8")
        node, raw = parse_yaml(text)
    except OSError as exc:
        raise WatchError([f"{path}: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise WatchError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    if raw is None:
        raise WatchError([f"{path}:1:1: (top level): the file is empty"])
    try:
        return Watch.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = list(err["loc"])
            message = str(err["msg"]).removeprefix("Value error, ")
            if not loc and "side" in message:
                loc = ["sides"]  # the check across parties and sides
            line, col = position(node, loc, value=err["type"] != "extra_forbidden")
            if err["type"] == "extra_forbidden" and loc:
                keys = _WATCH_KEYS["party" if loc[0] == "parties" else ""]
                close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
                message = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
            field = ".".join(str(p) for p in loc) or "(top level)"
            problems.append(f"{path}:{line}:{col}: {field}: {message}")
        raise WatchError(problems) from exc


def load_watches(directory: Path) -> list[Watch]:
    watches = [load_watch(p) for p in sorted(directory.glob("*.y*ml"))]
    ids = [w.id for w in watches]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise WatchError([f"{directory}: duplicate watch ids {sorted(dupes)}"])
    return watches
