"""The long-running commands refuse what they cannot work with: one line, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import chroma_operator

SOURCE_ROOT = str(Path(chroma_operator.__file__).resolve().parents[1])


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    return subprocess.run(
        [sys.executable, "-m", "chroma_operator", "run", *args],
        capture_output=True,
        text=True,
        env={**base, "PYTHONPATH": SOURCE_ROOT, **(env or {})},
        timeout=60,
        check=False,
    )


def test_needs_a_namespace_choice() -> None:
    out = run()
    assert out.returncode == 2 and "--all-namespaces" in out.stderr


def test_no_credentials_is_a_clear_error(tmp_path: Path) -> None:
    out = run("-A", env={"KUBECONFIG": str(tmp_path / "none")})
    assert out.returncode == 2
    assert "no Kubernetes credentials" in out.stderr and "Traceback" not in out.stderr


def test_metrics_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: x, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: x, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: x, user: x}}]\n"
    )
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        out = run("-A", "--metrics-port", str(port), env={"KUBECONFIG": str(kubeconfig)})
    assert out.returncode == 2
    assert f"port {port}" in out.stderr and "--metrics-port" in out.stderr
    assert "Traceback" not in out.stderr


def test_router_refuses_a_missing_or_broken_topology(tmp_path: Path) -> None:
    def router(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "chroma_operator",
                "router",
                "--topology",
                str(path),
                "--port",
                "1",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": SOURCE_ROOT},
            timeout=60,
            check=False,
        )

    missing = router(tmp_path / "none.json")
    assert missing.returncode == 2 and "cannot read topology" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"cluster": "x"}')
    bad = router(broken)
    assert bad.returncode == 2 and "is not a valid topology" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr
