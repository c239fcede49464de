"""Typed status parts: status.tuning and status.slo keep their wire format, old objects
(with fields this version does not know) still parse, and the CRD keeps unknown fields."""

from __future__ import annotations

from typing import Any

from chroma_operator.api.crd import status_schema
from chroma_operator.api.models import ChromaClusterStatus
from chroma_operator.api.slo_status import SloStatus
from chroma_operator.api.tuning_state import (
    AppliedTuning,
    IndexReload,
    TuningStatus,
    applied,
    index_reload,
    reloaded,
    tuning_of,
    verified,
)
from chroma_operator.reconcile.job_records import tuned_hnsw
from chroma_operator.reconcile.rollout import advance
from chroma_operator.reconcile.tuning import tuning_outcome, verification

CHOSEN = {
    "maxNeighbors": 16,
    "efConstruction": 100,
    "efSearch": 40,
    "recall": 0.97,
    "recallStdErr": 0.004,
    "p50Ms": 0.8,
    "p99Ms": 2.1,
    "buildSeconds": 1.5,
    "indexBytes": 1024,
}
RESULT: dict[str, Any] = {
    "v": 1,
    "status": "ok",
    "reason": None,
    "message": "",
    "time": "2026-01-01T00:00:00Z",
    "collection": "docs",
    "space": "cosine",
    "k": 10,
    "targetRecall": 0.95,
    "sample": 2000,
    "queries": 100,
    "points": 12,
    "chosen": CHOSEN,
    "best": CHOSEN,
    "front": [[16, 100, 40, 0.97, 0.8]],
    "futureField": {"kept": True},
}


def test_tuning_result_round_trips_in_camel_case() -> None:
    record, ok, reason, message = tuning_outcome("c-tune-1", RESULT)
    assert ok and reason == "Tuned"
    assert message == (
        "docs: maxNeighbors=16 efConstruction=100 efSearch=40: recall 0.97, p50 0.8 ms"
    )
    wire = record.wire()
    assert wire["job"] == "c-tune-1" and "v" not in wire and "reason" not in wire
    assert wire["chosen"] == CHOSEN and wire["targetRecall"] == 0.95
    assert wire["front"] == [[16, 100, 40, 0.97, 0.8]]
    assert wire["futureField"] == {"kept": True}  # unknown fields survive
    assert TuningStatus.model_validate(wire).wire() == wire


def test_failed_and_unreadable_results() -> None:
    failed = {"status": "failed", "reason": "no-collection", "message": "no collection docs"}
    record, ok, reason, message = tuning_outcome("j", failed)
    assert (ok, reason, message) == (False, "NoCollection", "no collection docs")
    assert record.wire() == {"job": "j", **failed}
    for result in (None, {"status": "ok", "chosen": "not a point"}):
        record, ok, reason, _ = tuning_outcome("j", result)
        assert (ok, reason, record.status) == (False, "NoResult", "failed")


def test_verification_against_the_prediction() -> None:
    record, *_ = tuning_outcome("j", RESULT)
    good = verification(record, {"status": "ok", "verify": {"recall": 0.951, "efSearch": 40}})
    assert good.ok and good.predicted == 0.97
    assert good.wire()["efSearch"] == 40
    low = verification(record, {"status": "ok", "verify": {"recall": 0.9, "efSearch": 40}})
    assert not low.ok and low.message.startswith("below target")
    missing = verification(record, None)
    assert not missing.ok and "no readable result" in missing.message


def test_applied_tuning_lifecycle() -> None:
    record, *_ = tuning_outcome("j", RESULT)
    assert tuned_hnsw("efSearch", record) is None  # nothing applied yet
    record.applied = AppliedTuning(
        ef_search=40,
        max_neighbors=16,
        ef_construction=100,
        collection="docs",
        at="2026-01-01T00:00:01Z",
        index_reload=IndexReload.PENDING.value,
    )
    assert tuned_hnsw("none", record) is None
    assert tuned_hnsw("efSearch", record) == {"ef_search": 40}
    assert tuned_hnsw("all", record) == {
        "ef_search": 40,
        "max_neighbors": 16,
        "ef_construction": 100,
    }
    status = {"tuning": record.wire()}
    assert status["tuning"]["applied"]["indexReload"] == "pending"
    parsed = tuning_of(status)
    assert parsed is not None and index_reload(parsed.applied) is IndexReload.PENDING
    assert index_reload({"indexReload": "sideways"}) is None
    assert tuning_of({}) is None and tuning_of({"tuning": {"chosen": 3}}) is None
    restarts, state = advance(parsed.applied, {}, 2, 1, {}, "c")
    assert state == "rolling" and restarts == {0: "2026-01-01T00:00:01Z"}
    assert advance(None, {}, 2, 1, {}, "c") == ({}, "idle")


SLO_WIRE: dict[str, Any] = {
    "evaluatedAt": "2026-01-01T00:00:00Z",
    "routers": 2,
    "paging": ["query-latency"],
    "objectives": [
        {
            "name": "query-latency",
            "type": "latency",
            "target": 0.99,
            "window": "30d",
            "thresholdMs": 50.0,
            "observedSeconds": 600,
            "events": 1000,
            "badEvents": 200,
            "burnRates": {"5m": 20.0, "1h": 20.0},
            "alerts": [{"severity": "page", "windows": "1h/5m", "factor": 14.4, "firing": True}],
            "firing": ["page"],
            "sli": 0.8,
            "errorBudgetRemaining": -19.0,
            "oldField": 1,
        }
    ],
}


def test_slo_status_round_trips() -> None:
    assert SloStatus.model_validate(SLO_WIRE).wire() == SLO_WIRE


def test_cluster_status_parses_typed_parts_and_old_objects() -> None:
    status = ChromaClusterStatus.model_validate(
        {"phase": "Ready", "slo": SLO_WIRE, "tuning": RESULT, "shardCount": 2}
    )
    assert isinstance(status.slo, SloStatus) and status.slo.paging == ["query-latency"]
    assert isinstance(status.tuning, TuningStatus) and status.tuning.chosen is not None
    assert status.tuning.chosen.ef_search == 40


def test_crd_keeps_unknown_fields_of_typed_parts() -> None:
    props = status_schema()["properties"]
    for part in ("slo", "tuning"):
        assert props[part]["type"] == "object"
        assert props[part]["x-kubernetes-preserve-unknown-fields"] is True
    applied = props["tuning"]["properties"]["applied"]
    assert "indexReload" in applied["properties"]
    assert applied["x-kubernetes-preserve-unknown-fields"] is True
    objective = props["slo"]["properties"]["objectives"]["items"]
    assert objective["properties"]["burnRates"]["additionalProperties"] == {"type": "number"}


def test_the_lifecycle_transitions_set_index_reload() -> None:
    record, *_ = tuning_outcome("j", RESULT)
    pending = applied(record, "2026-01-01T00:00:01Z")
    assert pending.applied is not None and pending.applied.ef_search == 40
    assert pending.applied.collection == "docs" and pending.applied.max_neighbors == 16
    assert index_reload(pending.applied) is IndexReload.PENDING
    assert record.applied is None  # transitions return a new status, the old one is kept
    verifying = reloaded(pending)
    assert index_reload(verifying.applied) is IndexReload.VERIFYING
    done = verified(verifying, verification(verifying, None))
    assert done.applied is not None and done.applied.verified is not None
    assert index_reload(done.applied) is IndexReload.DONE and not done.applied.verified.ok
    wire = done.wire()["applied"]
    assert wire["indexReload"] == "done" and wire["at"] == "2026-01-01T00:00:01Z"
    assert wire["verified"]["ok"] is False


def test_repair_and_resharding_status_parse_what_the_operator_writes() -> None:
    from chroma_operator.reconcile.repair import repair_outcome
    from chroma_operator.reshard.progress import Progress

    report = {
        "v": 1,
        "status": "ok",
        "copied": 3,
        "removed": 1,
        "overwritten": 0,
        "bucketsCompared": 1024,
        "bucketsDiffering": 2,
        "seconds": 1.5,
        "dryRun": False,
        "collections": [{"name": "docs"}],
    }
    record, ok, _, _ = repair_outcome("repair-1", report)
    progress = Progress(2, 3)
    progress.records_moved = 10
    resharding = {
        **progress.as_status(),
        "placement": {"epoch": 3, "shards": 3, "phase": "backfill"},
    }
    status = ChromaClusterStatus.model_validate({"repair": record, "resharding": resharding})
    assert ok and status.repair is not None and status.repair.copied == 3
    assert status.repair.wire() == {k: v for k, v in record.items()}  # nothing lost
    assert status.resharding is not None and status.resharding.records_moved == 10
    assert status.resharding.wire()["placement"]["phase"] == "backfill"
    schema = status_schema()["properties"]
    for part in ("repair", "resharding"):
        assert schema[part]["x-kubernetes-preserve-unknown-fields"] is True
