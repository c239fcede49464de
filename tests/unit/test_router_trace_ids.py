"""Trace id helpers: a shard's real id passes through, all zeros do not, one is minted."""

from __future__ import annotations

from starlette.responses import Response

from chroma_operator.router.collections import reply_error
from chroma_operator.router.route_app import ensure_trace_id
from chroma_operator.router.shards import Reply
from chroma_operator.router.state import passthrough
from chroma_operator.router.trace import new_trace_id, shard_trace_id

SHARD_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_shard_trace_id_ignores_the_all_zero_id_of_an_untraced_node() -> None:
    assert shard_trace_id({"chroma-trace-id": SHARD_TRACE}) == SHARD_TRACE
    assert shard_trace_id({"chroma-trace-id": "0" * 32}) is None
    assert shard_trace_id({}) is None


def test_minted_ids_are_distinct_32_hex_digits() -> None:
    ids = {new_trace_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forwarded_shard_answer_keeps_the_shards_trace_id() -> None:
    reply = Reply(0, "http://s0", 404, b'{"error":"NotFoundError","message":"x"}', SHARD_TRACE)
    assert ensure_trace_id(passthrough(reply)) == SHARD_TRACE
    assert ensure_trace_id(reply_error(reply).response()) == SHARD_TRACE


def test_an_answer_without_one_gets_a_new_id_once() -> None:
    response = Response(b"{}", 200, media_type="application/json")
    minted = ensure_trace_id(response)
    assert response.headers["chroma-trace-id"] == minted
    assert ensure_trace_id(response) == minted
    assert len(response.headers.getlist("chroma-trace-id")) == 1
