"""Choosing the point: the fastest meeting the target, the Pareto front, and no answer."""

from __future__ import annotations

from chroma_operator.tuner.choose import best_point, choose, pareto_front
from chroma_operator.tuner.sweep import Point, index_bytes


def P(m: int, efc: int, ef: int, recall: float, p50: float, build: float = 1.0) -> Point:
    return Point(m, efc, ef, recall, p50, p50 * 2, p50, build, index_bytes(1000, 8, m))


POINTS = [
    P(8, 64, 10, 0.80, 0.10),
    P(8, 64, 40, 0.93, 0.20),
    P(16, 64, 10, 0.90, 0.12),
    P(16, 64, 40, 0.97, 0.25),
    P(16, 128, 40, 0.97, 0.24, build=2.0),
    P(32, 128, 80, 0.99, 0.60),
    P(32, 128, 160, 0.99, 0.90),  # dominated: as accurate as the one before, slower
]


def test_fastest_point_meeting_the_target() -> None:
    c = choose(POINTS, 0.95, k=10)
    assert c.met and c.point is not None
    assert c.point.params == (16, 128, 40)  # 0.24 ms beats 0.25 ms at the same recall
    assert "fastest of 4 of 7" in c.reason


def test_latency_tie_goes_to_cheaper_build() -> None:
    pts = [P(16, 128, 40, 0.97, 0.24, build=2.0), P(16, 64, 40, 0.97, 0.24, build=1.0)]
    c = choose(pts, 0.95, k=10)
    assert c.point is not None and c.point.ef_construction == 64


def test_pareto_front_is_monotone_and_drops_dominated_points() -> None:
    front = pareto_front(POINTS)
    assert [p.params for p in front] == [
        (8, 64, 10),
        (16, 64, 10),
        (8, 64, 40),
        (16, 128, 40),
        (32, 128, 80),
    ]
    lat = [p.p50_ms for p in front]
    rec = [p.recall for p in front]
    assert lat == sorted(lat) and rec == sorted(rec)


def test_target_nobody_reaches_says_why() -> None:
    c = choose(POINTS, 0.999, k=10)
    assert not c.met and c.point is None
    assert c.best is not None and c.best.params == (32, 128, 80)
    assert "no grid point reached recall@10 >= 0.999" in c.reason
    assert "Widen the grid" in c.reason


def test_empty_grid() -> None:
    assert best_point([]) is None
    assert not choose([], 0.9, k=10).met
