"""The lifecycle of an applied tuning result (status.tuning.applied.indexReload), in one place.

pending    efSearch was applied; shards restart one at a time so loaded indexes use it
verifying  every shard restarted; a verify Job measures what clients get now
done       measured (status.tuning.applied.verified says how it went)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class IndexReload(StrEnum):
    PENDING = "pending"
    VERIFYING = "verifying"
    DONE = "done"


def index_reload(applied: Mapping[str, Any] | None) -> IndexReload | None:
    """The state of status.tuning.applied (None: nothing applied, or an unknown value)."""
    value = (applied or {}).get("indexReload")
    try:
        return IndexReload(value) if value is not None else None
    except ValueError:
        return None
