"""`chroma-operator encoder`: flag checks, clear load failures, and no torch at import."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import chroma_operator

PYTHONPATH = str(Path(chroma_operator.__file__).parents[1])


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, HF_HUB_OFFLINE="1", COLUMNS="250")
    return subprocess.run(
        [sys.executable, "-m", "chroma_operator", "encoder", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_cli_does_not_import_torch() -> None:
    code = (
        "import sys, chroma_operator.cli; "
        "bad = [m for m in ('torch', 'sentence_transformers', 'transformers') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=PYTHONPATH),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_help_lists_the_batching_flags() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    for flag in (
        "--model",
        "--device",
        "--dtype",
        "--max-batch-size",
        "--max-batch-delay-ms",
        "--max-client-batch",
        "--max-queue",
        "--threads",
        "--auto-truncate",
        "--drain-delay-seconds",
        "--shutdown-timeout-seconds",
    ):
        assert flag in proc.stdout, flag


def test_bad_flags_are_refused_before_any_model_load() -> None:
    proc = run("--model", "m", "--device", "tpu")
    assert proc.returncode == 2 and "--device" in proc.stderr
    proc = run("--model", "m", "--dtype", "int8")
    assert proc.returncode == 2 and "--dtype" in proc.stderr
    proc = run("--model", "m", "--max-client-batch", "100", "--max-queue", "10")
    assert proc.returncode == 2 and "--max-queue" in proc.stderr


def test_a_model_that_cannot_load_is_a_clear_exit(tmp_path: Path) -> None:
    # The port opens (answering 503) while the model loads; a failed load still exits 2.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    proc = run("--model", str(tmp_path), "--device", "cpu", "--host", "127.0.0.1", "--port", port)
    assert proc.returncode == 2
    assert "cannot load model" in proc.stderr
