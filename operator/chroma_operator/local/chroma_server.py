"""One real `chroma run` server as a child process.

The Chroma wheel ships the Rust server behind the `chroma` command. The local runtime
runs one per shard replica, and the router's tests and benchmark start them the same way,
so this class owns the details once: a free loopback port, its own data directory, a
config file (a config path conflicts with `--port/--path`, so everything goes there),
waiting for the heartbeat, and a clean stop that escalates to a kill.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
import yaml

DEFAULT_SETTINGS: dict[str, Any] = {
    "listen_address": "127.0.0.1",
    "allow_reset": True,
    "max_payload_size_bytes": 41_943_040,
    "cors_allow_origins": [],
    "sqlitedb": {"hash_type": "md5", "migration_mode": "apply"},
}


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out; good enough for tests and local runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on the port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def chroma_executable() -> str:
    """The `chroma` command next to this interpreter (venvs) or on PATH."""
    beside = Path(sys.executable).with_name("chroma")
    if beside.exists():
        return str(beside)
    found = shutil.which("chroma")
    if found is None:
        raise FileNotFoundError("the `chroma` command (from the chromadb wheel) is not installed")
    return found


class ChromaServerError(RuntimeError):
    """The server did not come up (its log tail is in the message)."""


class ChromaServer:
    """A `chroma run` child process on loopback.

    `data_dir` defaults to a fresh temporary directory that `stop()` keeps (so a restart
    sees the same data) and `close()` removes when this object created it.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: str | Path | None = None,
        settings: dict[str, Any] | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 60.0,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._owns_dir = data_dir is None
        self.data_dir = (
            Path(data_dir)
            if data_dir is not None
            else Path(tempfile.mkdtemp(prefix="chroma-server-"))
        )
        self.settings = dict(settings or {})
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "chroma.yaml"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "chroma.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def config(self) -> dict[str, Any]:
        """The effective config: defaults, then `settings`, then port and path."""
        cfg: dict[str, Any] = {**DEFAULT_SETTINGS, **self.settings}
        cfg["port"] = self.port
        cfg["listen_address"] = self.host
        cfg["persist_path"] = str(self.data_dir / "data")
        return cfg

    def start(self) -> ChromaServer:
        """Start the process and wait until it answers its heartbeat."""
        if self.running:
            return self
        if port_in_use(self.port, self.host):
            # Otherwise the heartbeat of whatever holds the port would pass for ours.
            raise ChromaServerError(f"port {self.port} on {self.host} is already in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config()))
        self._log = self.log_path.open("ab")
        env = {**os.environ, "CHROMA_TELEMETRY": "false", "ANONYMIZED_TELEMETRY": "False"}
        self._proc = subprocess.Popen(
            [chroma_executable(), "run", str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                code = self._proc.returncode
                raise ChromaServerError(f"chroma exited with {code}: {self._tail()}")
            try:
                resp = httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1.0)
                if resp.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise ChromaServerError(f"chroma did not answer on {self.url}: {self._tail()}")

    def _tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in `timeout` seconds."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL at once: what a crashed shard looks like to the router."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self.stop()

    def restart(self) -> ChromaServer:
        """Stop and start again on the same port and data directory."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop, and remove the data directory when this object made it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
