"""Watch files: parties, aliases and sides, and the errors a broken file gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.watches import WatchError, load_watch, load_watches
from tests.conftest import RULES


def test_shipped_watch_loads_with_sides() -> None:
    [watch] = load_watches(RULES / "watches")
    assert watch.id == "nagorno-karabakh"
    assert (watch.side_of("NKR"), watch.side_of("ARM"), watch.side_of("AZE")) == (
        "armenian",
        "armenian",
        "azerbaijani",
    )
    assert watch.side_of("TUR") is None and watch.side_of(None) is None
    assert watch.names()["Stepanakert"] == "NKR"


def test_relevance_is_by_whole_word(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("id: w\nname: W\nparties:\n  MLI: {name: Mali, aliases: [Malian]}\n")
    watch = load_watch(path)
    assert watch.is_relevant("Malian troops moved north.")
    assert not watch.is_relevant("Somalian pirates were arrested.")  # no keyword given: names


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id: w\nname: W\nparties: {A: {name: A}}\nsides: {x: [B]}\n", "unknown parties"),
        ("id: W W\nname: W\nparties: {A: {name: A}}\n", "id"),
        ("id: w\nname: W\nparties: {A: {name: A, nick: a}}\n", "nick"),
        ("id: w\nname: [unclosed\n", "w.yaml"),
    ],
)
def test_broken_watch_files_name_the_file_and_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(text)
    with pytest.raises(WatchError, match=message) as err:
        load_watch(path)
    assert str(path) in str(err.value)


def test_duplicate_watch_ids(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("id: same\nname: S\nparties: {A: {name: A}}\n")
    with pytest.raises(WatchError, match="duplicate watch ids"):
        load_watches(tmp_path)
