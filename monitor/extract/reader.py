"""The contract every fact reader keeps; `normalize.READERS` is the registry of them.

A fact reader owns one kind of fact (its `topic`, the fact's `type`): the word stems without
which a sentence cannot hold such a fact (`triggers`: one scan of the whole text marks each
sentence with the topics whose stems it contains, in `Sentence.topics`), and `facts`, which
reads the analysed sentences of one text and returns that kind's facts, passage-level
merging included. Readers share nothing but the analysed sentences, so one failing reader
costs only its own facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from monitor.events import Fact
from monitor.extract.analysis import Sentence
from monitor.watches import Watch


@runtime_checkable
class FactReader(Protocol):
    """One kind of fact, read from the sentences of one text."""

    @property
    def topic(self) -> str:
        """The fact type it yields ("casualties"), also its mark in `Sentence.topics`."""
        ...

    @property
    def triggers(self) -> Sequence[str]:
        """Word stems, lower case: a sentence with none of them holds none of its facts."""
        ...

    def facts(self, sentences: Sequence[Sentence], watch: Watch | None) -> list[Fact]:
        """Its facts in `sentences` (every sentence of the text, in order)."""
        ...
