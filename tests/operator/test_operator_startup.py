"""`chroma-operator run` without kopf's peering CRD says why it waits, and how to fix it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import kmock
import yaml

from chroma_operator.reconcile.kube import Kube
from chroma_operator.reconcile.startup import missing_peering
from kube_emulator import ApiServer


def _kubeconfig(apiserver: ApiServer, path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emu", "cluster": {"server": str(apiserver.url)}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "me"}}],
                "current-context": "emu",
            }
        )
    )
    return path


async def test_run_without_the_peering_crd_warns_with_the_fix(
    apiserver: ApiServer, tmp_path: Path
) -> None:
    env = {**os.environ, "KUBECONFIG": str(_kubeconfig(apiserver, tmp_path / "kubeconfig"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chroma_operator",
        "run",
        "-n",
        "search",
        "--liveness",
        "",
        "--metrics-port",
        "0",
        "--log-format",
        "json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen = []
    try:
        async with asyncio.timeout(90):
            while line := (await proc.stdout.readline()).decode():
                seen.append(line)
                if "kopfpeerings.kopf.dev is not installed" in line:
                    break
    finally:
        proc.terminate()
        await proc.wait()
    record = json.loads(seen[-1])
    assert record["severity"] == "warn" or "warn" in json.dumps(record).lower()
    assert "--standalone" in record["message"] and "install" in record["message"]


async def test_no_warning_once_the_peering_crd_is_served(apiserver: ApiServer, kube: Kube) -> None:
    assert await missing_peering(kube, clusterwide=True) is not None
    apiserver.resources["kopf.dev/v1/clusterkopfpeerings"] = kmock.ResourceInfo(
        kind="ClusterKopfPeering", namespaced=False, verbs={"get", "list", "watch", "patch"}
    )
    assert await missing_peering(kube, clusterwide=True) is None
