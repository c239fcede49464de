"""`chroma-operator render` and `crd` as a user runs them: real process, exit codes, output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

import chroma_operator

SOURCE_ROOT = str(Path(chroma_operator.__file__).resolve().parents[1])


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chroma_operator", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": SOURCE_ROOT, "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )


def test_render_quickstart_yaml(repo_root: Path) -> None:
    proc = run("render", str(repo_root / "examples/quickstart.yaml"), "--namespace", "demo")
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    assert {d["metadata"]["namespace"] for d in docs} == {"demo"}
    assert [d["kind"] for d in docs].count("StatefulSet") == 2
    assert "&id" not in proc.stdout  # no YAML anchors in what people read


def test_render_json(repo_root: Path) -> None:
    proc = run("render", str(repo_root / "examples/production.yaml"), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (
        out["kind"] == "List"
        and len(out["items"]) == 1 + 8 * 3 + 1 + 2 + 1 + 4 + 2  # CronJob, rule, monitors,
    )  # dashboard, + 2 NetworkPolicies (shards; router and encoder)


def test_render_invalid_names_every_field_without_traceback() -> None:
    bad = """
apiVersion: chroma.operator.dev/v1alpha1
kind: ChromaCluster
metadata: {name: bad}
spec:
  shards: 0
  hnsw: {space: euclid}
  encoder: {gpu: many}
"""
    proc = run("render", "-", stdin=bad)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "-: spec.shards: must be >= 1",
        "-: spec.hnsw.space: must be one of l2, cosine, ip",
        "-: spec.encoder.gpu: must be a valid integer, unable to parse string as an integer",
    ]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_render_cross_field_rule() -> None:
    doc = "apiVersion: chroma.operator.dev/v1alpha1\nkind: ChromaCluster\nmetadata: {name: x}\nspec: {tuning: {k: 50}}\n"
    proc = run("render", "-", stdin=doc)
    assert proc.returncode == 2
    assert proc.stderr.startswith("-: spec.tuning.k: tuning.k must not be above")


def test_render_unreadable_and_malformed(tmp_path: Path) -> None:
    missing = run("render", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read file" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    proc = run("render", str(broken))
    assert proc.returncode == 2 and "not valid YAML (line 2" in proc.stderr
    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    proc = run("render", str(other))
    assert proc.returncode == 2
    assert "apiVersion: must be chroma.operator.dev/v1alpha1" in proc.stderr
    assert "kind: must be ChromaCluster" in proc.stderr


def test_crd_command_prints_the_committed_crd(repo_root: Path) -> None:
    proc = run("crd")
    assert proc.returncode == 0
    assert proc.stdout == (repo_root / "crds/chromacluster.yaml").read_text()
