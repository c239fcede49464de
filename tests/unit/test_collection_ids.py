"""The names and contents of the client-id entries (pure)."""

from __future__ import annotations

from chroma_names import CHROMA_NAME
from chroma_operator.data.collection_ids import (
    IDS_DATABASE,
    NAMES_DATABASE,
    entries,
    id_entry,
    name_entry,
)


def test_entry_names_are_valid_collection_names_for_any_collection() -> None:
    assert CHROMA_NAME.match(id_entry("0d5f6c2e-8a4b-4c1e-9f3a-2b7d9e1c4a60"))
    for where in [("t", "d", "n"), ("ténant/ü", "db with space", "x" * 512)]:
        assert CHROMA_NAME.match(name_entry(*where))


def test_entry_names_tell_collections_apart() -> None:
    # No separator games: ("a", "bc", ...) and ("ab", "c", ...) are different collections.
    assert name_entry("a", "bc", "n") != name_entry("ab", "c", "n")
    assert name_entry("t", "d", "n") == name_entry("t", "d", "n")


def test_both_entries_carry_where_and_the_by_name_one_the_id() -> None:
    by_id, by_name = entries("cid", ("t", "d", "n"))
    assert by_id == (IDS_DATABASE, "id-cid", {"tenant": "t", "database": "d", "name": "n"})
    assert by_name[0] == NAMES_DATABASE and by_name[1] == name_entry("t", "d", "n")
    assert by_name[2] == {"client_id": "cid", "tenant": "t", "database": "d", "name": "n"}
