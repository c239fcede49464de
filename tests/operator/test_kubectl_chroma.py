"""`kubectl chroma` as a user runs it: kubectl finds `kubectl-chroma` on PATH, the plugin
reads a kubeconfig that points at the emulated API server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from chroma_operator.api.validate import parse_cluster
from chroma_operator.build import build_all, naming
from chroma_operator.build.meta import Owner
from chroma_operator.reconcile.kube import Kube
from kube_emulator import ApiServer
from kubectl import cluster_doc, kubectl_apply

API = "chroma.operator.dev/v1alpha1"
NS = "search"
KUBECTL = shutil.which("kubectl")


@pytest.fixture()
def plugin_env(apiserver: ApiServer, tmp_path: Path) -> dict[str, str]:
    """A PATH with `kubectl-chroma` on it and a kubeconfig with two contexts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl-chroma"
    # What the console-script entry point does once the package is installed.
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m chroma_operator.kubectl_plugin "$@"\n')
    script.chmod(0o755)
    kubeconfig = tmp_path / "kubeconfig"
    server = str(apiserver.url).rstrip("/")
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emu", "cluster": {"server": server}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "main", "context": {"cluster": "emu", "user": "me"}},
                    {
                        "name": "search",
                        "context": {"cluster": "emu", "user": "me", "namespace": NS},
                    },
                ],
                "current-context": "main",
            }
        )
    )
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["KUBECONFIG"] = str(kubeconfig)
    return env


async def kubectl(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run `kubectl chroma ...` without blocking the emulator's event loop."""
    assert KUBECTL is not None
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        "chroma",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def _annotations(kube: Kube) -> dict[str, str]:
    obj = await kube.get(API, "ChromaCluster", NS, "demo")
    assert obj is not None
    return dict(obj["metadata"].get("annotations") or {})


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_chroma_commands_write_annotations_and_read_status(
    apiserver: ApiServer, kube: Kube, plugin_env: dict[str, str]
) -> None:
    await kubectl_apply(kube, cluster_doc("demo", NS, {"shards": 2, "replicas": 2}))
    await kube.patch_status(
        API,
        "ChromaCluster",
        NS,
        "demo",
        {
            "phase": "Ready",
            "ready": "2/2",
            "shards": [
                {"index": 0, "replicas": 2, "readyReplicas": 2},
                {
                    "index": 1,
                    "replicas": 2,
                    "readyReplicas": 1,
                    "replicaStates": [
                        {"name": "shard-1-0", "state": "in-sync", "pendingHints": 0},
                        {"name": "shard-1-1", "state": "stale", "pendingHints": 12},
                    ],
                },
            ],
            "fence": {"replicas": ["shard-0-1"]},
            "tuning": {"applied": {"efSearch": 64, "indexReload": "done"}},
        },
    )
    env = plugin_env

    # --context picks the namespace from the context; -n overrides it.
    code, out, err = await kubectl(env, "--context", "search", "status", "demo")
    assert code == 0, err
    assert "Phase:     Ready" in out and "Ready:     2/2 shards" in out
    assert "shard-0-1 fenced" in out and "shard-1-1 not ready" in out
    assert "shard-1-0 ready, in-sync\n" in out
    assert "shard-1-1 not ready, stale (12 hints pending)" in out
    assert "efSearch 64" in out
    code, out, err = await kubectl(env, "-n", NS, "status", "demo")
    assert code == 0 and "Cluster:   search/demo" in out
    code, _, err = await kubectl(env, "status", "demo")  # context "main": namespace default
    assert code == 1 and "404" in err and "Traceback" not in err

    for args, key, value in (
        (["hibernate"], "hibernation", "on"),
        (["wake"], "hibernation", "off"),
        (["pause"], "reconcile", "paused"),
    ):
        code, _, err = await kubectl(env, "-n", NS, *args, "demo")
        assert code == 0, err
        assert (await _annotations(kube))[f"chroma.operator.dev/{key}"] == value
    code, _, _ = await kubectl(env, "-n", NS, "resume", "demo")
    assert code == 0 and "chroma.operator.dev/reconcile" not in await _annotations(kube)

    code, out, err = await kubectl(env, "-n", NS, "fence", "demo", "shard-1-0", "shard-0-1")
    assert code == 0, err
    fenced = json.loads((await _annotations(kube))["chroma.operator.dev/fenced"])
    assert fenced == ["shard-0-1", "shard-1-0"]
    code, _, err = await kubectl(env, "-n", NS, "fence", "demo", "shard-9-0")
    assert code == 1 and "no replica shard-9-0" in err
    code, _, _ = await kubectl(env, "-n", NS, "unfence", "demo", "shard-1-0")
    assert json.loads((await _annotations(kube))["chroma.operator.dev/fenced"]) == ["shard-0-1"]
    code, _, _ = await kubectl(env, "-n", NS, "unfence", "demo")
    assert "chroma.operator.dev/fenced" not in await _annotations(kube)

    for command, key in (("tune", "tune"), ("repair", "repair")):
        code, _, err = await kubectl(env, "-n", NS, command, "demo")
        assert code == 0, err
        first = (await _annotations(kube))[f"chroma.operator.dev/{key}"]
        assert first

    # Backup: a clear message without the CRD, an object with it.
    backup_crd = apiserver.resources.pop(f"{API}/chromabackups")
    code, _, err = await kubectl(env, "-n", NS, "backup", "demo")
    assert code == 1 and "ChromaBackup CRD" in err and "Traceback" not in err
    apiserver.resources[f"{API}/chromabackups"] = backup_crd
    code, out, err = await kubectl(env, "-n", NS, "backup", "demo")
    assert code == 0, err
    created = out.split("ChromaBackup ", 1)[1].split()[0]
    backup = await kube._call("GET", f"/apis/{API}/namespaces/{NS}/chromabackups/{created}")
    assert backup["spec"] == {"cluster": "demo"}


def test_the_plugin_is_an_installed_console_script(repo_root: Path) -> None:
    import tomllib

    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["kubectl-chroma"] == "chroma_operator.kubectl_plugin:main"
    assert any(d.startswith("kubernetes") for d in project["dependencies"])


def _shard_pod(doc: dict[str, Any], shard: int, replica: int) -> dict[str, Any]:
    """The pod the shard's StatefulSet controller would create (its template, its name)."""
    owner = Owner(name=doc["metadata"]["name"], namespace=NS)
    sts = next(
        m
        for m in build_all(parse_cluster(doc), owner)
        if m["kind"] == "StatefulSet" and m["metadata"]["name"] == naming.shard(owner.name, shard)
    )
    template = sts["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{sts['metadata']['name']}-{replica}",
            "namespace": NS,
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    }


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_chroma_logs_reads_one_replica_and_names_a_missing_pod(
    apiserver: ApiServer, kube: Kube, plugin_env: dict[str, str]
) -> None:
    doc = cluster_doc("demo", NS, {"shards": 2, "replicas": 2})
    await kubectl_apply(kube, doc)
    pod = _shard_pod(doc, 1, 1)
    await kube.create(pod)
    name = pod["metadata"]["name"]
    apiserver.pod_logs[(NS, name, "chroma")] = "starting chroma\nlistening on :8000\nready\n"
    apiserver.pod_logs[(NS, name, "router")] = "router serving shard 1\n"
    env = plugin_env

    code, out, err = await kubectl(env, "-n", NS, "logs", "demo", "--shard", "1", "--replica", "1")
    assert code == 0, err
    assert out == "starting chroma\nlistening on :8000\nready\n"
    code, out, err = await kubectl(
        env, "-n", NS, "logs", "demo", "--shard", "1", "--replica", "1", "--tail", "1"
    )
    assert (code, out) == (0, "ready\n"), err
    code, out, err = await kubectl(
        env, "-n", NS, "logs", "demo", "--shard", "1", "--replica", "1", "-c", "router"
    )
    assert (code, out) == (0, "router serving shard 1\n"), err

    # Clear errors, never a traceback: no such pod, container, shard, or cluster.
    code, _, err = await kubectl(env, "-n", NS, "logs", "demo")
    assert code == 1 and "Traceback" not in err
    assert f"pod {naming.shard('demo', 0)}-0 (shard 0, replica 0 of demo) does not exist" in err
    code, _, err = await kubectl(
        env, "-n", NS, "logs", "demo", "--shard", "1", "--replica", "1", "-c", "sidecar"
    )
    assert code == 1 and "container sidecar is not valid" in err and "Traceback" not in err
    code, _, err = await kubectl(env, "-n", NS, "logs", "demo", "--shard", "2")
    assert code == 1 and "demo has 2 shard(s), 0..1" in err
    code, _, err = await kubectl(env, "-n", NS, "logs", "demo", "--replica", "5")
    assert code == 1 and "demo has 2 replica(s) a shard, 0..1" in err
    code, _, err = await kubectl(env, "-n", NS, "logs", "nothere")
    assert code == 1 and "404" in err and "Traceback" not in err
