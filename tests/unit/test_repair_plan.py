"""Repair decisions without servers: which replica is the reference per bucket, which
buckets differ, and what a target needs (copy, remove, overwrite)."""

from __future__ import annotations

import numpy as np

from chroma_operator.data.digest import Digest
from chroma_operator.data.records import RecordBatch
from chroma_operator.repair import plan
from chroma_operator.repair.report import CollectionResult, RepairReport


def _digest(sums: list[int]) -> Digest:
    return Digest(len(sums), list(sums), [1 if s else 0 for s in sums])


def test_majority_per_bucket_and_ties_go_to_the_first_in_sync() -> None:
    digests = {"a": _digest([1, 2, 3]), "b": _digest([1, 9, 4]), "c": _digest([1, 9, 5])}
    chosen, disagree = plan.bucket_references(digests, ["a", "b", "c"])
    assert chosen == ["a", "b", "a"]  # bucket 1: b and c agree; bucket 2: three-way tie
    assert disagree == [1, 2]
    assert plan.differing_buckets(digests["a"], digests, chosen) == {"b": [1]}
    assert plan.differing_buckets(_digest([0, 9, 3]), digests, chosen) == {"a": [0]}


def test_references_are_the_in_sync_replicas_in_order() -> None:
    reps = [
        plan.Replica("shard-0-1", 0, 1, "u1", "in-sync"),
        plan.Replica("shard-0-0", 0, 0, "u0", "stale"),
        plan.Replica("shard-0-2", 0, 2, "u2", "in-sync"),
    ]
    assert [r.name for r in plan.references(reps)] == ["shard-0-1", "shard-0-2"]


def _batch(ids: list[str], docs: list[str]) -> RecordBatch:
    return RecordBatch(ids, np.ones((len(ids), 2), dtype=np.float32), list(docs))


def test_changes_classify_missing_extra_and_changed_records() -> None:
    ref = [_batch(["a", "b", "c"], ["A", "B", "C"]), _batch(["d"], ["D"])]
    target = [_batch(["a", "c", "x"], ["A", "changed", "X"])]
    ch = plan.changes(ref, target, "exact")
    assert sorted(ch.copy.ids) == ["b", "d"] and ch.copy.documents == ["B", "D"]
    assert ch.overwrite.ids == ["c"] and ch.overwrite.documents == ["C"]
    assert ch.remove == ["x"] and len(ch) == 4
    assert len(plan.changes(ref, ref, "exact")) == 0


def test_report_status_exit_reasons_and_compact_size() -> None:
    report = RepairReport(dry_run=True)
    report.results = [
        CollectionResult(f"shard-{i}-1", i, "t", "d", "c", 1024, 2, 1, 1, 0) for i in range(300)
    ]
    assert not report.converged and report.reason == "differences-found"
    assert len(str(report.compact())) < 4096
    assert report.totals()["copied"] == 300
    report.errors.append("shard-1-1 (u) did not answer")
    assert report.reason == "replica-unreachable"
