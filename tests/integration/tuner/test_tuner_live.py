"""`--live` against a real server: honest about Chroma ignoring a live ef_search change.

Chroma 1.5.9 stores the new ef_search but keeps searching a loaded index with the old
one. The tuner must say the change had no effect, and must put the original
value back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tuner_helpers import ChromaProcess, blobs, load, run_cli

pytestmark = pytest.mark.slow


def test_live_mode_reports_no_effect_and_restores(chroma: ChromaProcess, tmp_path: Path) -> None:
    client = chroma.client()
    load(client, "live", blobs(4000, 16, seed=3), "l2", ef_search=37)
    args = ["--url", chroma.url, "--collection", "live", "--queries", "100", "--live"]
    args += ["--grid", "M=8", "--grid", "efc=32", "--grid", "ef=10,200", "--target-recall", "0.5"]
    run = run_cli(args, tmp_path / "r.json")
    assert run.code == 0, run.stderr
    live = run.report["live"] if run.report else None
    assert live is not None
    assert live["original"] == 37
    assert [p["efSearch"] for p in live["points"]] == [10, 200]
    assert all(p["stored"] for p in live["points"])  # the API accepted each value...
    assert live["effective"] is False  # ...but the loaded index did not change
    assert "restart" in live["note"]
    assert live["restored"] is True
    config = client.get_collection("live").configuration_json
    assert config["hnsw"]["ef_search"] == 37
    assert "live: effective=False restored=True" in run.stdout
