"""The evaluator's memory: (rule, key) -> JSON value, kept in the ``rule_state`` table.

Each rule owns the rows under its id (series, windows, what it fired and when); rows under
``GLOBAL`` belong to the evaluator as a whole (the hold index, inhibitors, silences, rules
that are failing, the latest publication time seen). The live path loads the table once per
run and writes back only what changed, in the transaction that advances its checkpoint;
backtests use the same class in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from monitor.store.tables import RuleState, table_of

# State rows not owned by one rule ("~" cannot start a rule id), and their keys.
GLOBAL = "~evaluator"
HOLDS = "holds"  # "rule\x1fdedup key" -> when the hold ends
FAILING = "failing"  # rule id -> its current run of failures (read by /healthz)
LATEST = "latest"  # the latest publication time of the facts evaluated so far
SILENCES = "silences"  # silence id -> the silence, as folded from the log


class State:
    """Rule memory as a dict of (rule, key) -> JSON value, remembering what changed."""

    def __init__(self, values: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.values: dict[tuple[str, str], dict[str, Any]] = values or {}
        self.dirty: set[tuple[str, str]] = set()
        self._memories: dict[str, RuleMemory] = {}

    def get(self, rule: str, key: str) -> dict[str, Any] | None:
        value = self.values.get((rule, key))
        return dict(value) if value is not None else None

    def put(self, rule: str, key: str, value: dict[str, Any]) -> None:
        self.values[(rule, key)] = value
        self.dirty.add((rule, key))

    def delete(self, rule: str, key: str) -> None:
        if self.values.pop((rule, key), None) is not None:
            self.dirty.add((rule, key))

    def put_or_delete(self, rule: str, key: str, value: dict[str, Any]) -> None:
        """Keep a non-empty table; drop the row when it became empty."""
        if value:
            self.put(rule, key, value)
        else:
            self.delete(rule, key)

    def memory(self, rule: str) -> RuleMemory:
        found = self._memories.get(rule)
        if found is None:
            found = self._memories[rule] = RuleMemory(self, rule)
        return found

    @classmethod
    def load(cls, session: Session) -> State:
        rows = session.execute(
            select(col(RuleState.rule), col(RuleState.key), col(RuleState.value))
        ).all()
        return cls({(r, k): v for r, k, v in rows})

    def flush(self, session: Session, chunk: int = 400) -> None:
        """Write what changed since the last flush: rows that went away are deleted, the
        others inserted or updated in place (one statement per chunk of rows)."""
        keys = sorted(self.dirty)
        gone = [k for k in keys if k not in self.values]
        for i in range(0, len(gone), chunk):
            where = tuple_(col(RuleState.rule), col(RuleState.key)).in_(gone[i : i + chunk])
            session.execute(delete(RuleState).where(where))
        live = [k for k in keys if k in self.values]
        if live:
            postgres = session.get_bind().dialect.name == "postgresql"
            stmt = (pg_insert if postgres else sqlite_insert)(table_of(RuleState))
            upsert = stmt.on_conflict_do_update(
                index_elements=["rule", "key"], set_={"value": stmt.excluded.value}
            )
            for i in range(0, len(live), chunk):
                rows = [
                    {"rule": r, "key": k, "value": self.values[(r, k)]}
                    for r, k in live[i : i + chunk]
                ]
                session.execute(upsert, rows)
        self.dirty.clear()


@dataclass
class RuleMemory:
    """One rule's view of the state."""

    state: State
    rule: str

    def get(self, key: str) -> dict[str, Any] | None:
        return self.state.get(self.rule, key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.state.put(self.rule, key, value)

    def delete(self, key: str) -> None:
        self.state.delete(self.rule, key)
