"""`local up` with `bootstrap.fromBackup`: the new cluster is filled from a backup and
verified before `up` says it is ready; a second `up` keeps the data (no second restore)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import chromadb
import pytest

import chroma_operator
from local_ports import port_run

ENV = {**os.environ, "PYTHONPATH": str(Path(chroma_operator.__file__).resolve().parents[1])}
pytestmark = pytest.mark.slow
N = 150


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chroma_operator", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        check=False,
    )


def cluster_file(path: Path, name: str, shards: int, bootstrap: str = "") -> Path:
    path.write_text(
        "apiVersion: chroma.operator.dev/v1alpha1\nkind: ChromaCluster\n"
        f"metadata:\n  name: {name}\n"
        f"spec:\n  shards: {shards}\n  encoder:\n    enabled: false\n{bootstrap}"
    )
    return path


def test_local_up_restores_a_backup_before_ready(tmp_path: Path) -> None:
    src_home, src_port = tmp_path / "src", port_run()
    src = cluster_file(tmp_path / "src.yaml", "src", 1)
    up = cli("local", "up", str(src), "--dir", str(src_home), "--port", str(src_port), "-d")
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        coll = chromadb.HttpClient(host="127.0.0.1", port=src_port).create_collection("docs")
        coll.add(
            ids=[f"r{i}" for i in range(N)],
            embeddings=[[float(i), 1.0] for i in range(N)],
            documents=[f"doc {i}" for i in range(N)],
        )
        made = cli(
            "backup", "create", "--url", f"http://127.0.0.1:{src_port}",
            "--to", str(tmp_path / "bk"), "--no-progress", "-q",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr + made.stdout
        backup_id = made.stdout.split()[1].rstrip(":")
    finally:
        cli("local", "down", "--dir", str(src_home))

    boot = (
        f"  bootstrap:\n    fromBackup:\n      destination: {tmp_path / 'bk'}\n"
        f"      backupId: {backup_id}\n"
    )
    new_home, new_port = tmp_path / "new", port_run()
    new = cluster_file(tmp_path / "new.yaml", "restored", 2, boot)
    args = ("local", "up", str(new), "--dir", str(new_home), "--port", str(new_port), "-d")
    up = cli(*args)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        out = up.stdout
        assert f"Restored {N} records" in out and "verified" in out
        assert out.index("Restored") < out.index("router at")
        got = chromadb.HttpClient(host="127.0.0.1", port=new_port).get_collection("docs")
        assert got.count() == N
        assert got.get(ids=["r7"])["documents"] == ["doc 7"]
        assert (new_home / "restored.json").exists()
        again = cli(*args)
        assert again.returncode == 0, again.stderr + again.stdout
        assert "Restoring" not in again.stdout
    finally:
        cli("local", "down", "--dir", str(new_home))
