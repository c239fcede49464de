"""The tune command's grid syntax: the spellings the Job uses, and clear refusals."""

from __future__ import annotations

import pytest
import typer

from chroma_operator.api.models import Grid
from chroma_operator.tuner.cli import parse_grid


def test_axes_not_given_keep_the_spec_defaults() -> None:
    got = parse_grid(["ef=10,20"])
    assert got["ef_search"] == [10, 20]
    assert got["max_neighbors"] == Grid().max_neighbors
    assert got["ef_construction"] == Grid().ef_construction


@pytest.mark.parametrize(
    ("item", "axis"),
    [
        ("M=4,8", "max_neighbors"),
        ("maxNeighbors=4,8", "max_neighbors"),
        ("efc=4,8", "ef_construction"),
        ("efConstruction=4,8", "ef_construction"),
        ("efSearch=4,8", "ef_search"),
        ("ef=4, 8,", "ef_search"),
    ],
)
def test_spellings(item: str, axis: str) -> None:
    assert parse_grid([item])[axis] == [4, 8]


@pytest.mark.parametrize("item", ["Q=1", "M", "M=", "M=a,b", "ef=0", "M=1", "efc=-5"])
def test_refusals_name_the_option(item: str) -> None:
    with pytest.raises(typer.BadParameter) as err:
        parse_grid([item])
    assert err.value.param_hint == "--grid"
