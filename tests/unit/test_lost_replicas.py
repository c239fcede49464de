"""What one look at a shard's replica marks means (router/lost_replicas.verdict)."""

from __future__ import annotations

import pytest

from chroma_operator.router.lost_replicas import Mark, verdict

NOW, SETTLE = 1_000.0, 60.0
OLD = {"made_at": NOW - 3_600}
YOUNG = {"made_at": NOW - 5}


@pytest.mark.parametrize(
    ("marks", "expected"),
    [
        ([OLD, OLD], ("mark", [], NOW)),  # all carry it: nothing to do
        ([False, False], ("mark", [0, 1], NOW)),  # a new shard: every replica answered
        ([False], ("mark", [0], NOW)),  # one replica: marked, so a later one can be told
        ([False, None], ("mark", [], NOW)),  # new, but one did not answer: wait
        ([OLD, False], ("lost", [1], OLD["made_at"])),  # it lost its data
        ([OLD, None, False], ("lost", [2], OLD["made_at"])),  # a down sibling changes nothing
        ([YOUNG, False], ("mark", [1], YOUNG["made_at"])),  # marks still being made
        ([OLD, YOUNG, False], ("mark", [2], YOUNG["made_at"])),  # the newest mark counts
        ([{}, False], ("lost", [1], 0.0)),  # a mark without a time is old
    ],
)
def test_verdict(marks: list[Mark], expected: tuple[str, list[int], float]) -> None:
    assert verdict(marks, NOW, SETTLE) == expected
