"""`local up --secret`: the same ChromaCluster file with auth and TLS runs on one machine."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import chromadb
import httpx
import pytest
import yaml
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings
from chromadb.errors import ChromaAuthError

import chroma_operator
from local_ports import port_run
from tls_certs import CertFiles, make_certs

pytestmark = pytest.mark.slow

TOKEN = "local-app-t0ken"
ENV = {
    **os.environ,
    "PYTHONPATH": str(Path(chroma_operator.__file__).resolve().parents[1]),
    "HF_HUB_OFFLINE": "1",
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chroma_operator", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, repo_root: Path
) -> Iterator[tuple[int, CertFiles, Path]]:
    work = tmp_path_factory.mktemp("secured")
    certs = make_certs(work / "certs")
    tokens = work / "tokens.yaml"  # the Secret's data keys
    tokens.write_text(
        yaml.safe_dump(
            {
                "tokens.yaml": yaml.safe_dump(
                    {"tokens": [{"name": "app", "token": TOKEN, "tenant": "*", "role": "admin"}]}
                )
            }
        )
    )
    tls = work / "tls.yaml"  # a whole Secret manifest, base64 data as kubectl prints it
    tls.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {"name": "secured-tls"},
                "data": {
                    k: base64.b64encode(p.read_bytes()).decode()
                    for k, p in (
                        ("tls.crt", certs.cert),
                        ("tls.key", certs.key),
                        ("ca.crt", certs.ca),
                    )
                },
            }
        )
    )
    home = work / "home"
    example = str(repo_root / "examples/secured.yaml")
    missing = cli("local", "up", example, "--dir", str(home), "--detach")
    assert missing.returncode == 2
    assert "--secret secured-tokens=FILE" in missing.stderr
    for _ in range(3):  # other tests on this machine take ports too: retry on a clash
        port = port_run()
        up = cli(
            "local",
            "up",
            example,
            "--dir",
            str(home),
            "--port",
            str(port),
            "--detach",
            "--secret",
            f"secured-tokens={tokens}",
            "--secret",
            f"secured-tls={tls}",
        )
        if "already in use" not in up.stderr:
            break
    assert up.returncode == 0, up.stderr + up.stdout
    assert TOKEN not in up.stdout + up.stderr
    try:
        yield port, certs, home
    finally:
        cli("local", "down", "--dir", str(home))
        assert not [
            p for p in (home / "secrets").rglob("*") if p.is_file() and p.stat().st_mode & 0o077
        ]


def test_stock_client_with_token_over_https(secured: tuple[int, CertFiles, Path]) -> None:
    port, certs, _ = secured
    settings = Settings(chroma_server_ssl_verify=str(certs.ca))
    SharedSystemClient.clear_system_cache()
    client = chromadb.HttpClient(
        host="127.0.0.1", port=port, ssl=True, headers={"X-Chroma-Token": TOKEN}, settings=settings
    )
    col = client.get_or_create_collection("notes")
    col.upsert(ids=["1", "2"], embeddings=[[1.0, 0.0], [0.0, 1.0]])
    assert col.count() == 2
    SharedSystemClient.clear_system_cache()
    with pytest.raises(ChromaAuthError):
        chromadb.HttpClient(host="127.0.0.1", port=port, ssl=True, settings=settings)
    assert httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False).status_code == 200


def test_status_shows_replica_states_over_https_with_a_private_ca(
    secured: tuple[int, CertFiles, Path],
) -> None:
    """`local status` verifies the router with the CA from the TLS Secret and reads the
    replica states without a token (the view is read-only)."""
    _, _, home = secured
    status = cli("local", "status", "--dir", str(home))
    assert status.returncode == 0, status.stderr + status.stdout
    assert status.stdout.count("in-sync") == 2, status.stdout  # 2 shards x 1 replica
