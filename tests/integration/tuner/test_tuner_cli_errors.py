"""The real CLI on bad input: a clear message, a report that says why, exit code != 0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tuner_helpers import ChromaProcess, load, run_cli

from chroma_operator.local.chroma_server import free_port

pytestmark = pytest.mark.slow

SMALL_GRID = ["--grid", "M=4", "--grid", "efc=8", "--grid", "ef=10", "--no-progress"]


@pytest.fixture(scope="module")
def server(chroma: ChromaProcess) -> ChromaProcess:
    client = chroma.client()
    client.create_collection("empty-one", embedding_function=None)
    rng = np.random.default_rng(0)
    load(client, "five", rng.normal(size=(5, 8)).astype(np.float32), "l2")
    # Uniform noise in 64 dimensions with a tiny graph: recall 1.0 is out of reach.
    load(client, "hard", rng.normal(size=(3000, 64)).astype(np.float32), "l2")
    return chroma


def test_unknown_collection(server: ChromaProcess, tmp_path: Path) -> None:
    run = run_cli(["--url", server.url, "--collection", "nope", *SMALL_GRID], tmp_path / "r.json")
    assert run.code == 3
    assert "collection 'nope' does not exist" in run.stderr
    assert run.report is not None
    assert (run.report["status"], run.report["reason"]) == ("failed", "unknown-collection")


def test_empty_collection(server: ChromaProcess, tmp_path: Path) -> None:
    run = run_cli(
        ["--url", server.url, "--collection", "empty-one", *SMALL_GRID], tmp_path / "r.json"
    )
    assert run.code == 3
    assert "is empty" in run.stderr
    assert run.report is not None and run.report["reason"] == "empty-collection"
    assert run.report["collectionCount"] == 0


def test_k_larger_than_the_collection(server: ChromaProcess, tmp_path: Path) -> None:
    args = ["--url", server.url, "--collection", "five", "--k", "10", "--queries", "1"]
    run = run_cli([*args, *SMALL_GRID], tmp_path / "r.json")
    assert run.code == 3
    assert "k=10 is larger than the 5 records" in run.stderr
    assert run.report is not None and run.report["reason"] == "k-too-large"


def test_target_no_point_reaches(server: ChromaProcess, tmp_path: Path) -> None:
    termination = tmp_path / "termination-log"
    termination.touch()
    args = ["--url", server.url, "--collection", "hard", "--target-recall", "1.0"]
    args += ["--queries", "100", "--plot", str(tmp_path / "p.png")]
    args += ["--termination-log", str(termination)]
    run = run_cli([*args, *SMALL_GRID], tmp_path / "r.json")
    assert run.code == 4
    assert "no grid point reached recall@10 >= 1" in run.stderr
    report = run.report
    assert report is not None
    assert (report["status"], report["reason"]) == ("failed", "target-not-reached")
    assert report["chosen"] is None and report["best"]["recall"] < 1.0
    assert len(report["points"]) == 1 and report["front"]
    assert (tmp_path / "p.png").exists()
    small = json.loads(termination.read_text())
    assert small["reason"] == "target-not-reached" and small["best"]["recall"] < 1.0
    assert "Widen the grid" in small["message"]


def test_unreachable_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    run = run_cli(["--url", url, "--collection", "x", *SMALL_GRID], tmp_path / "r.json")
    assert run.code == 5
    assert "cannot reach Chroma" in run.stderr
    assert run.report is not None and run.report["reason"] == "unreachable"


def test_bad_grid_is_a_usage_error(server: ChromaProcess) -> None:
    run = run_cli(["--url", server.url, "--grid", "Q=1"])
    assert run.code == 2
    assert "--grid" in run.stderr


def test_small_collection_holds_out_fewer_queries(server: ChromaProcess, tmp_path: Path) -> None:
    """500 queries (the spec default) from 200 records: hold out a fifth, and say so."""
    client = server.client()
    load(
        client,
        "two-hundred",
        np.random.default_rng(1).normal(size=(200, 8)).astype(np.float32),
        "l2",
    )
    args = ["--url", server.url, "--collection", "two-hundred", "--target-recall", "0.5"]
    run = run_cli([*args, *SMALL_GRID], tmp_path / "r.json")
    assert run.code == 0, run.stderr
    assert "holding out 40 queries instead of 500" in run.stderr
    assert run.report is not None
    assert (run.report["queries"], run.report["queriesRequested"], run.report["baseSize"]) == (
        40,
        500,
        160,
    )


def test_supplied_query_set(server: ChromaProcess, tmp_path: Path) -> None:
    """--query-file: the whole sample is the base and the given vectors are the queries."""
    queries = np.random.default_rng(9).normal(size=(30, 64)).astype(np.float32)
    np.save(tmp_path / "q.npy", queries)
    args = ["--url", server.url, "--collection", "hard", "--query-file", str(tmp_path / "q.npy")]
    args += ["--target-recall", "0.1"]
    run = run_cli([*args, *SMALL_GRID], tmp_path / "r.json")
    assert run.code == 0, run.stderr
    assert run.report is not None
    assert run.report["querySource"].endswith("q.npy")
    assert (run.report["queries"], run.report["baseSize"]) == (30, 3000)
    np.save(tmp_path / "bad.npy", queries[:, :8])
    bad = run_cli([*args[:-2], "--query-file", str(tmp_path / "bad.npy"), *SMALL_GRID])
    assert bad.code == 2 and "dimension 8" in bad.stderr
