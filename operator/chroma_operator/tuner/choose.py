"""Pick the point to recommend: the fastest that meets the target recall.

Latency is the per-query p50 (what most queries pay); ties go to the cheaper build and
the smaller index. The Pareto front (no other point is both at least as accurate and at
least as fast) is what the report and the plot show as the achievable trade-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chroma_operator.tuner.sweep import Point


@dataclass(frozen=True)
class Choice:
    """The recommendation, or None with the reason in plain words."""

    point: Point | None
    best: Point | None
    front: list[Point]
    reason: str

    @property
    def met(self) -> bool:
        return self.point is not None


def _cost(p: Point) -> tuple[float, float, int, int, int, int]:
    return (p.p50_ms, p.build_s, p.index_bytes, p.ef_search, p.max_neighbors, p.ef_construction)


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """Points no other point dominates (recall >=, p50 <=, one of them strictly), by latency."""
    front: list[Point] = []
    best_recall = -1.0
    for p in sorted(points, key=lambda p: (p.p50_ms, -p.recall, _cost(p))):
        if p.recall > best_recall:
            front.append(p)
            best_recall = p.recall
    return front


def best_point(points: Sequence[Point]) -> Point | None:
    """The most accurate point (the fastest of those when several tie)."""
    if not points:
        return None
    return min(points, key=lambda p: (-p.recall, *_cost(p)))


def describe(p: Point) -> str:
    return (
        f"maxNeighbors={p.max_neighbors} efConstruction={p.ef_construction} "
        f"efSearch={p.ef_search} (recall {p.recall:.4f}, p50 {p.p50_ms:.3f} ms)"
    )


def choose(points: Sequence[Point], target_recall: float, k: int) -> Choice:
    front = pareto_front(points)
    best = best_point(points)
    meeting = [p for p in points if p.recall >= target_recall]
    if not points or best is None:
        return Choice(None, None, front, "the grid is empty: nothing was measured")
    if not meeting:
        return Choice(
            None,
            best,
            front,
            f"no grid point reached recall@{k} >= {target_recall:g}; the best was "
            f"{describe(best)}. Widen the grid (larger efSearch, maxNeighbors or "
            "efConstruction) or lower targetRecall.",
        )
    chosen = min(meeting, key=_cost)
    return Choice(
        chosen,
        best,
        front,
        f"fastest of {len(meeting)} of {len(points)} points with recall@{k} >= "
        f"{target_recall:g}: {describe(chosen)}",
    )
