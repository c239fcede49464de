"""Topology reload: a changed file is picked up, a broken one keeps the last good."""

from __future__ import annotations

from pathlib import Path

import pytest

from chroma_operator.router.topology_source import TopologySource
from chroma_operator.topology import ShardTopology, Topology


def topo(n: int) -> Topology:
    return Topology(
        cluster="c",
        namespace="ns",
        shards=[ShardTopology(index=i, endpoints=[f"http://s{i}:8000"]) for i in range(n)],
    )


def test_reload_on_change_only(tmp_path: Path) -> None:
    path = tmp_path / "topology.json"
    path.write_text(topo(2).to_json())
    source = TopologySource(path)
    assert len(source.current.shards) == 2
    assert source.poll() is None
    path.write_text(topo(3).to_json())
    new = source.poll()
    assert new is not None and len(new.shards) == 3
    assert source.poll() is None


def test_broken_file_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / "topology.json"
    path.write_text(topo(2).to_json())
    source = TopologySource(path)
    path.write_text("{broken")
    with pytest.raises(ValueError):
        source.poll()
    assert len(source.current.shards) == 2
    path.write_text(topo(2).model_copy(update={"cluster": "c"}).to_json() + "\n")
    assert source.poll() is None  # same topology, different bytes


def test_in_memory_topology_never_reloads() -> None:
    assert TopologySource(topo(1)).poll() is None
