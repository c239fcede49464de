"""`local up FILE` with a changed `shards` on a running cluster: the move runs online."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import chromadb
import pytest

import chroma_operator
from chroma_operator.router.placement import shard_for
from chroma_operator.topology import Topology
from local_ports import port_run

ENV = {**os.environ, "PYTHONPATH": str(Path(chroma_operator.__file__).resolve().parents[1])}


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chroma_operator", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        check=False,
    )


pytestmark = pytest.mark.slow

N = 200


def write_file(path: Path, shards: int) -> Path:
    path.write_text(
        "apiVersion: chroma.operator.dev/v1alpha1\n"
        "kind: ChromaCluster\n"
        "metadata:\n  name: moving\n"
        f"spec:\n  shards: {shards}\n  encoder:\n    enabled: false\n"
    )
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, int]]:
    work = tmp_path_factory.mktemp("reshard")
    home, port = work / "moving", port_run()
    file = write_file(work / "cluster.yaml", 2)
    up = cli("local", "up", str(file), "--dir", str(home), "--port", str(port), "--detach")
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        yield home, file, port
    finally:
        cli("local", "down", "--dir", str(home))


def test_grow_then_refuse_zero_then_shrink(home: tuple[Path, Path, int]) -> None:
    directory, file, port = home
    coll = chromadb.HttpClient(host="127.0.0.1", port=port).create_collection("docs")
    coll.add(ids=[f"r{i}" for i in range(N)], embeddings=[[float(i), 1.0] for i in range(N)])

    args = ("local", "up", str(file), "--dir", str(directory), "--port", str(port), "--detach")
    grown = cli(*args[:2], str(write_file(file, 3)), *args[3:], timeout=600)
    # (the file is rewritten in place; the cluster keeps its directory and ports)
    assert grown.returncode == 0, grown.stderr + grown.stdout
    for phase in ("dual-write", "backfill", "verify", "cutover", "cleanup", "done"):
        assert phase in grown.stdout, grown.stdout
    topo = Topology.from_json((directory / "topology.json").read_bytes())
    assert len(topo.shards) == 3 and topo.current_placement().phase == "stable"
    progress = json.loads((directory / "topology.resharding.json").read_text())
    # Exactly the records jump hash says must move, no more.
    assert progress["recordsMoved"] == sum(
        shard_for(f"r{i}", 2) != shard_for(f"r{i}", 3) for i in range(N)
    )
    for i, shard in enumerate(topo.shards):
        p = shard.endpoints[0].rsplit(":", 1)[1]
        ids = chromadb.HttpClient(host="127.0.0.1", port=int(p)).get_collection("docs").get()["ids"]
        assert ids and all(shard_for(x, 3) == i for x in ids)
    client = chromadb.HttpClient(host="127.0.0.1", port=port).get_collection("docs")
    assert client.count() == N

    zero = cli(*args[:2], str(write_file(file, 0)), *args[3:])
    assert zero.returncode == 2 and "spec.shards: must be >= 1" in zero.stderr

    shrunk = cli(*args[:2], str(write_file(file, 2)), *args[3:], timeout=600)
    assert shrunk.returncode == 0, shrunk.stderr + shrunk.stdout
    assert "stopped 1 shard processes" in shrunk.stdout
    topo = Topology.from_json((directory / "topology.json").read_bytes())
    assert len(topo.shards) == 2
    assert chromadb.HttpClient(host="127.0.0.1", port=port).get_collection("docs").count() == N
    status = cli("local", "status", "--dir", str(directory))
    assert status.returncode == 0 and "shard-2-0" not in status.stdout
