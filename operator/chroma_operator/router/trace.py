"""Trace ids: the `chroma-trace-id` header a Chroma node answers with, kept end to end.

The stock client puts this header into `ChromaError.trace_id`. A shard's own id passes
through when the router forwards that shard's answer; otherwise the router mints one per
request, so every answer (and the router's log line for it) carries an id to look for.
A node without tracing configured sends all zeros, which identifies nothing: that counts
as no id.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

TRACE_HEADER = "chroma-trace-id"
_NO_TRACE = "0" * 32


def new_trace_id() -> str:
    """A fresh 128-bit id in the shape Chroma uses (32 lowercase hex digits).

    An id to search logs by, not a secret: the process's PRNG, not a system call per
    request."""
    return f"{random.getrandbits(128):032x}"


def shard_trace_id(headers: Mapping[str, str]) -> str | None:
    """The shard's trace id from its response headers, or None when it sent no real one."""
    value = headers.get(TRACE_HEADER)
    if not value or value == _NO_TRACE:
        return None
    return value


def trace_headers(trace_id: str | None) -> dict[str, str]:
    return {TRACE_HEADER: trace_id} if trace_id else {}
