"""Report outputs: the compact result fits a termination message, the plot is a PNG."""

from __future__ import annotations

import json
from pathlib import Path

from chroma_operator.tuner.choose import choose
from chroma_operator.tuner.report import (
    COMPACT_LIMIT,
    Report,
    compact,
    encode,
    plot,
    write_termination_message,
)
from chroma_operator.tuner.sweep import Point


def _report(n_points: int, target: float = 0.95) -> Report:
    r = Report(url="http://x:8000", collection="docs", k=10, target_recall=target)
    r.space, r.sample_size, r.base_size, r.queries = "cosine", 20000, 19500, 500
    # A long, strictly improving curve: every point is on the Pareto front.
    r.points = [
        Point(
            16, 128, 10 + i, min(0.5 + i / (2 * n_points), 1.0), 0.01 + i * 1e-3, 0.02, 0.01, 1.0, 1
        )
        for i in range(n_points)
    ]
    r.choice = choose(r.points, target, 10)
    r.status = "ok" if r.choice.met else "failed"
    r.message = r.choice.reason
    return r


def test_compact_result_fits_4kb_even_with_a_huge_front() -> None:
    r = _report(3000)
    assert len(r.choice.front) == 3000 if r.choice else False
    small = compact(r)
    assert len(encode(small)) <= COMPACT_LIMIT
    assert small["frontTrimmed"] is True
    assert small["chosen"]["efSearch"] >= 10 and small["chosen"]["recall"] >= 0.95
    assert set(small) >= {
        "v",
        "status",
        "time",
        "collection",
        "k",
        "targetRecall",
        "chosen",
        "best",
        "front",
    }


def test_compact_result_keeps_a_small_front_whole() -> None:
    small = compact(_report(12))
    assert len(small["front"]) == 12 and "frontTrimmed" not in small


def test_failure_is_reported_with_its_reason() -> None:
    r = Report(url="http://x:8000", collection="nope", k=10, target_recall=0.95)
    r.fail("unknown-collection", "collection 'nope' does not exist")
    small = compact(r)
    assert small["status"] == "failed" and small["reason"] == "unknown-collection"
    assert small["chosen"] is None
    assert json.loads(json.dumps(r.to_json()))["message"] == "collection 'nope' does not exist"


def test_termination_message_only_where_the_kubelet_made_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "termination-log"
    assert write_termination_message({"a": 1}, str(missing)) is False
    assert not missing.exists()
    missing.touch()
    assert write_termination_message({"a": 1}, str(missing)) is True
    assert json.loads(missing.read_text()) == {"a": 1}


def test_plot_marks_front_and_choice(tmp_path: Path) -> None:
    out = tmp_path / "plot.png"
    plot(_report(40), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    no_choice = tmp_path / "none.png"
    plot(_report(40, target=1.01), no_choice)
    assert no_choice.stat().st_size > 1000
