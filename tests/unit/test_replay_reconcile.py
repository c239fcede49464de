"""Which records a replay wrote, per collection: what `reconcile` compares afterwards."""

from __future__ import annotations

import orjson
import pytest

from chroma_operator.router.hints import Hint
from chroma_operator.router.reconcile import ReplayedRecords

T, D = "default_tenant", "default_database"


def hint(suffix: str, body: object, method: str = "POST", name: str = "c") -> Hint:
    return Hint(method, None, orjson.dumps(body), {"x-chroma-token": "t"}, (T, D, name, suffix))


@pytest.mark.parametrize("suffix", ["/add", "/upsert", "/update", "/delete"])
def test_record_writes_by_id_are_collected_per_collection(suffix: str) -> None:
    replayed = ReplayedRecords()
    replayed.add(hint(suffix, {"ids": ["a", "b"]}))
    replayed.add(hint(suffix, {"ids": ["b", "c"]}))
    replayed.add(hint(suffix, {"ids": ["z"]}, name="other"))
    assert replayed.collections[(T, D, "c")].ids == {"a", "b", "c"}
    assert replayed.collections[(T, D, "other")].ids == {"z"}
    assert replayed.collections[(T, D, "c")].headers == {"x-chroma-token": "t"}


def test_a_delete_by_filter_keeps_its_filter() -> None:
    replayed = ReplayedRecords()
    replayed.add(hint("/delete", {"where": {"group": "g"}, "where_document": None}))
    touched = replayed.collections[(T, D, "c")]
    assert touched.ids == set() and touched.filters == [{"where": {"group": "g"}}]


@pytest.mark.parametrize(
    "h",
    [
        hint("", {"new_name": "d"}, method="PUT"),  # a modify: not records
        hint("/query", {"query_embeddings": [[1.0]]}),
        Hint("POST", "/tenants/t/databases/d/collections/x/upsert", b"{}", {}, None),
        Hint("POST", None, b"not json", {}, (T, D, "c", "/upsert")),
        Hint("POST", None, b"[1, 2]", {}, (T, D, "c", "/upsert")),
        Hint("POST", None, None, {}, (T, D, "c", "/delete")),
    ],
)
def test_anything_else_is_left_out(h: Hint) -> None:
    replayed = ReplayedRecords()
    replayed.add(h)
    assert not replayed
