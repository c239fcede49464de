"""The lifecycle of a tuning result in status (status.tuning), in one place.

A finished tuning Job's compact result becomes `TuningStatus`; when the spec asks for it,
the chosen efSearch is applied and `applied.indexReload` moves through:

pending    efSearch was applied; shards restart one at a time so loaded indexes use it
           (`applied`)
verifying  every shard restarted; a verify Job measures what clients get now (`reloaded`)
done       measured (status.tuning.applied.verified says how it went) (`verified`)

The transitions below are the only places that set `indexReload`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError

from chroma_operator.api.base import Observed


class IndexReload(StrEnum):
    PENDING = "pending"
    VERIFYING = "verifying"
    DONE = "done"


class TunedPoint(Observed):
    """One measured HNSW setting (the tuner's chosen or best point)."""

    max_neighbors: int | None = None
    ef_construction: int | None = None
    ef_search: int | None = None
    recall: float | None = None
    recall_std_err: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    build_seconds: float | None = None
    index_bytes: int | None = None


class Verification(Observed):
    """What clients got after the shards restarted with an applied efSearch."""

    ok: bool = False
    recall: float | None = None
    predicted: float | None = Field(default=None, description="Recall the tuner predicted")
    ef_search: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    message: str = ""


class AppliedTuning(Observed):
    """The HNSW settings a tuning run applied to the live collection."""

    ef_search: int | None = None
    max_neighbors: int | None = None
    ef_construction: int | None = None
    collection: str | None = None
    at: str | None = Field(default=None, description="When efSearch was applied")
    index_reload: str | None = Field(
        default=None, description="pending, verifying or done (see IndexReload)"
    )
    verified: Verification | None = None


class TuningStatus(Observed):
    """status.tuning: the last tuning Job's result (its compact report) and what was applied."""

    job: str | None = Field(default=None, description="The tuning Job this result came from")
    status: str | None = Field(default=None, description="ok or failed")
    reason: str | None = None
    message: str | None = None
    time: str | None = None
    collection: str | None = None
    space: str | None = None
    k: int | None = None
    target_recall: float | None = None
    sample: int | None = None
    queries: int | None = None
    points: int | None = Field(default=None, description="Settings measured")
    chosen: TunedPoint | None = None
    best: TunedPoint | None = None
    front: list[list[Any]] | None = Field(
        default=None,
        description="Pareto front: [maxNeighbors, efConstruction, efSearch, recall, p50Ms]",
    )
    front_trimmed: bool | None = None
    verify: dict[str, Any] | None = None
    live: dict[str, Any] | None = None
    applied_ef_search: int | None = Field(
        default=None, description="efSearch the tuning Job set on the live collection itself"
    )
    apply_error: str | None = None
    applied: AppliedTuning | None = None


def tuning_of(status: Mapping[str, Any] | None) -> TuningStatus | None:
    """status.tuning parsed (None when absent or unreadable: nothing to go on)."""
    raw = (status or {}).get("tuning")
    if not raw:
        return None
    try:
        return TuningStatus.model_validate(raw)
    except ValidationError:
        return None


def index_reload(applied: AppliedTuning | Mapping[str, Any] | None) -> IndexReload | None:
    """The state of status.tuning.applied (None: nothing applied, or an unknown value)."""
    if isinstance(applied, AppliedTuning):
        value = applied.index_reload
    else:
        value = (applied or {}).get("indexReload")
    try:
        return IndexReload(value) if value is not None else None
    except ValueError:
        return None


def applied(tuning: TuningStatus, at: str) -> TuningStatus:
    """-> pending: the chosen efSearch was set on the live collection at `at`."""
    chosen = tuning.chosen or TunedPoint()
    return tuning.model_copy(
        update={
            "applied": AppliedTuning(
                ef_search=chosen.ef_search,
                max_neighbors=chosen.max_neighbors,
                ef_construction=chosen.ef_construction,
                collection=tuning.collection,
                at=at,
                index_reload=IndexReload.PENDING.value,
            )
        }
    )


def reloaded(tuning: TuningStatus) -> TuningStatus:
    """pending -> verifying: every shard restarted with the applied efSearch."""
    assert tuning.applied is not None
    return tuning.model_copy(
        update={
            "applied": tuning.applied.model_copy(
                update={"index_reload": IndexReload.VERIFYING.value}
            )
        }
    )


def verified(tuning: TuningStatus, verdict: Verification) -> TuningStatus:
    """verifying -> done: what clients got after the restart."""
    assert tuning.applied is not None
    return tuning.model_copy(
        update={
            "applied": tuning.applied.model_copy(
                update={"index_reload": IndexReload.DONE.value, "verified": verdict}
            )
        }
    )
