"""The operator's own Prometheus metrics, served by `chroma-operator run --metrics-port`."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILES = Counter(
    "chroma_operator_reconcile_total",
    "Reconcile passes over a ChromaCluster, by outcome",
    ["result"],
)
RECONCILE_SECONDS = Histogram(
    "chroma_operator_reconcile_duration_seconds",
    "Time of one reconcile pass (reads, writes and status)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CHILD_WRITES = Counter(
    "chroma_operator_child_writes_total",
    "Writes to child objects, by verb (a steady cluster has none)",
    ["verb"],
)
TUNING_RESULTS = Counter(
    "chroma_operator_tuning_results_total",
    "Finished tuning Jobs read back into status, by outcome",
    ["outcome"],
)
REPAIR_RESULTS = Counter(
    "chroma_operator_repair_results_total",
    "Finished repair Jobs read back into status, by outcome",
    ["outcome"],
)
REPAIRED_RECORDS = Counter(
    "chroma_operator_repaired_records_total",
    "Records repair Jobs changed on replicas (from their reports), by action",
    ["action"],
)
