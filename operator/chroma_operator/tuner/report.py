"""What a tuning run leaves behind: a full JSON report, a compact result, and a plot.

The compact result is what the operator reads back from the Job (the container's
termination message, which Kubernetes caps at 4096 bytes), so it keeps the decision and
a trimmed front; the full report keeps every point.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chroma_operator.tuner.choose import Choice
from chroma_operator.tuner.sweep import Point

COMPACT_LIMIT = 4096
TERMINATION_LOG = "/dev/termination-log"
REPORT_VERSION = 1


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class Report:
    """Everything known about one run; filled in as the run goes, so a failure still has one."""

    url: str
    collection: str | None
    k: int
    target_recall: float
    started: str = field(default_factory=now_iso)
    finished: str | None = None
    status: str = "running"
    reason: str | None = None
    message: str = ""
    space: str | None = None
    collection_count: int | None = None
    collection_hnsw: dict[str, Any] = field(default_factory=dict)
    sample_size: int | None = None
    base_size: int | None = None
    queries: int | None = None
    queries_requested: int | None = None
    query_source: str = "held-out"
    truth_device: str | None = None
    grid: dict[str, list[int]] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    choice: Choice | None = None
    live: dict[str, Any] | None = None
    verify: dict[str, Any] | None = None
    timings_s: dict[str, float] = field(default_factory=dict)

    def fail(self, reason: str, message: str) -> None:
        self.status, self.reason, self.message = "failed", reason, message
        self.finished = now_iso()

    def to_json(self) -> dict[str, Any]:
        choice = self.choice
        return {
            "version": REPORT_VERSION,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "started": self.started,
            "finished": self.finished,
            "url": self.url,
            "collection": self.collection,
            "collectionCount": self.collection_count,
            "collectionHnsw": self.collection_hnsw,
            "space": self.space,
            "k": self.k,
            "targetRecall": self.target_recall,
            "sampleSize": self.sample_size,
            "baseSize": self.base_size,
            "queries": self.queries,
            "queriesRequested": self.queries_requested,
            "querySource": self.query_source,
            "truthDevice": self.truth_device,
            "grid": self.grid,
            "points": [p.to_json() for p in self.points],
            "front": [p.to_json() for p in choice.front] if choice else [],
            "chosen": choice.point.to_json() if choice and choice.point else None,
            "best": choice.best.to_json() if choice and choice.best else None,
            "live": self.live,
            "verify": self.verify,
            "timingsSeconds": {k: round(v, 3) for k, v in self.timings_s.items()},
        }


def _point(p: Point | None) -> dict[str, Any] | None:
    if p is None:
        return None
    out = p.to_json()
    out.pop("meanMs")
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def compact(
    report: Report, extra: Mapping[str, Any] | None = None, limit: int = COMPACT_LIMIT
) -> dict[str, Any]:
    """The decision (and `extra`, e.g. what was applied) in at most `limit` bytes of JSON
    (front points dropped evenly to fit)."""
    choice = report.choice
    out: dict[str, Any] = {
        "v": REPORT_VERSION,
        "status": report.status,
        "reason": report.reason,
        "message": report.message[:600],
        "time": report.finished or now_iso(),
        "collection": report.collection,
        "space": report.space,
        "k": report.k,
        "targetRecall": report.target_recall,
        "sample": report.sample_size,
        "queries": report.queries,
        "points": len(report.points),
        "chosen": _point(choice.point) if choice else None,
        "best": _point(choice.best) if choice else None,
        # [maxNeighbors, efConstruction, efSearch, recall, p50Ms], fastest first.
        "front": [
            [
                p.max_neighbors,
                p.ef_construction,
                p.ef_search,
                round(p.recall, 4),
                round(p.p50_ms, 4),
            ]
            for p in (choice.front if choice else [])
        ],
    }
    out.update(extra or {})
    if report.verify is not None:
        out["verify"] = report.verify
    if report.live is not None:
        out["live"] = {
            key: report.live.get(key) for key in ("effective", "restored", "original", "note")
        }
    while len(encode(out)) > limit and out["front"]:
        front = out["front"]
        out["front"] = front[::2] if len(front) > 2 else front[:-1]
        out["frontTrimmed"] = True
    if len(encode(out)) > limit:
        out["message"] = out["message"][:100]
    return out


def encode(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=False).encode()


def write_json(path: str | Path, data: Any) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n")


def write_termination_message(data: dict[str, Any], path: str = TERMINATION_LOG) -> bool:
    """Write the compact result where the kubelet reads it; False when there is no such file
    (outside a pod), so a local run never creates files under /dev."""
    if not path or not os.path.exists(path) or not os.access(path, os.W_OK):
        return False
    with open(path, "wb") as fh:
        fh.write(encode(data))
    return True


def plot(report: Report, path: str | Path) -> None:
    """Recall vs p50 latency: every point by maxNeighbors, the front, the target, the choice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    by_m: dict[int, list[Point]] = {}
    for p in report.points:
        by_m.setdefault(p.max_neighbors, []).append(p)
    for m, pts in sorted(by_m.items()):
        ax.scatter(
            [p.p50_ms for p in pts], [p.recall for p in pts], s=18, alpha=0.6, label=f"M={m}"
        )
    choice = report.choice
    if choice and choice.front:
        ax.plot(
            [p.p50_ms for p in choice.front],
            [p.recall for p in choice.front],
            "-",
            color="black",
            lw=1.2,
            label="Pareto front",
        )
    ax.axhline(
        report.target_recall,
        color="tab:red",
        ls="--",
        lw=1,
        label=f"target {report.target_recall:g}",
    )
    if choice and choice.point:
        c = choice.point
        ax.scatter(
            [c.p50_ms],
            [c.recall],
            marker="*",
            s=260,
            color="gold",
            edgecolor="black",
            zorder=5,
            label=f"chosen M={c.max_neighbors} efc={c.ef_construction} ef={c.ef_search}",
        )
    if choice and choice.best:
        b = choice.best
        ax.scatter(
            [b.p50_ms],
            [b.recall],
            marker="D",
            s=60,
            facecolor="none",
            edgecolor="tab:purple",
            zorder=5,
            label="most accurate",
        )
    ax.set_xscale("log")
    ax.set_xlabel("p50 query latency, ms (single thread, log scale)")
    ax.set_ylabel(f"recall@{report.k}")
    title = f"HNSW sweep: {report.collection} ({report.space}, {report.base_size} vectors, {report.queries} queries)"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
