"""Start, watch and stop the local cluster's processes; remember them in `state.json`.

Each process runs in its own session (process group), so `down` (or Ctrl-C in the
foreground) stops it and everything it spawned, and a detached cluster outlives the
command that started it. Data stays in the cluster directory for the next `up`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from chroma_operator.local.chroma_server import port_in_use
from chroma_operator.local.plan import LocalPlan, ProcessPlan

STATE_FILE = "state.json"


class LocalError(RuntimeError):
    """A problem the user can act on; the message says what to do."""


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    component: str
    pid: int | None
    port: int
    alive: bool
    healthy: bool
    log: Path


_STATE, _STARTTIME = 0, 19  # fields of /proc/<pid>/stat after the command name


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, ppid, ...]; [] when unreadable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return []


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None."""
    fields = _stat(pid)
    return fields[_STARTTIME] if len(fields) > _STARTTIME else None


def _alive(pid: int | None, marker: str, started: str | None = None) -> bool:
    """Whether `pid` runs and is still ours: the same start time as when we started it
    (a reused pid has another), else its command line names our config/marker."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    fields = _stat(pid)
    if started is not None and len(fields) > _STARTTIME:
        return fields[_STARTTIME] == started and fields[_STATE] != "Z"  # a zombie has exited
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return marker in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
    return True


def _healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        # Loopback health checks only: the certificate is the router clients' business.
        return httpx.get(url, timeout=timeout, verify=False).status_code == 200
    except httpx.HTTPError:
        return False


class Supervisor:
    def __init__(self, plan: LocalPlan) -> None:
        self.plan = plan
        self.dir = plan.directory
        self.state_path = self.dir / STATE_FILE

    # --- state -----------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            state = {}
        state.setdefault("processes", {})
        return state

    def _save(self, state: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        state.update(cluster=self.plan.cluster, url=self.plan.url)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    def log_path(self, proc: ProcessPlan) -> Path:
        return self.dir / "logs" / f"{proc.name}.log"

    @staticmethod
    def _marker(proc: ProcessPlan) -> str:
        return proc.argv[-1] if proc.component == "shard" else f"--port {proc.port}"

    def pid_of(self, proc: ProcessPlan) -> int | None:
        pid = self._state()["processes"].get(proc.name, {}).get("pid")
        return int(pid) if pid is not None else None

    def started_at(self, proc: ProcessPlan) -> str | None:
        started = self._state()["processes"].get(proc.name, {}).get("starttime")
        return str(started) if started is not None else None

    def is_running(self, proc: ProcessPlan) -> bool:
        return _alive(self.pid_of(proc), self._marker(proc), self.started_at(proc))

    # --- start / stop ------------------------------------------------------------------

    def check_ports(self, procs: Iterable[ProcessPlan]) -> None:
        busy = [p for p in procs if port_in_use(p.port)]
        if busy:
            names = ", ".join(f"{p.port} ({p.name})" for p in busy)
            raise LocalError(
                f"port {names} already in use: stop what holds it, or pick other ports "
                f"with --port (the router's port; shards and encoder take the ones after it)"
            )

    def start(self, procs: Iterable[ProcessPlan]) -> list[ProcessPlan]:
        """Start the given processes (files first); returns them."""
        started = []
        state = self._state()
        for proc in procs:
            for path, text in proc.files.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            for path, text in proc.secret_files.items():
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                path.touch(mode=0o600)
                path.chmod(0o600)
                path.write_text(text)
            log = self.log_path(proc)
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as out:
                child = subprocess.Popen(
                    proc.argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **proc.env},
                    start_new_session=True,
                )
            state["processes"][proc.name] = {
                "pid": child.pid,
                "starttime": _start_time(child.pid),
                "port": proc.port,
                "component": proc.component,
                "started": time.time(),
            }
            started.append(proc)
        self._save(state)
        return started

    def wait_healthy(
        self,
        procs: list[ProcessPlan],
        on_ready: Callable[[ProcessPlan], None] = lambda p: None,
    ) -> None:
        """Block until every process answers its health check; fail fast if one exits."""
        pending = {p.name: p for p in procs}
        deadlines = {p.name: time.monotonic() + p.startup_timeout for p in procs}
        while pending:
            for name, proc in list(pending.items()):
                if _healthy(proc.url + proc.health_path, timeout=1.0):
                    del pending[name]
                    on_ready(proc)
                elif not self.is_running(proc):
                    how = _exit_status(self.pid_of(proc))
                    raise LocalError(
                        f"{name} exited during start-up ({how}):\n{self.tail(proc, 15)}"
                    )
                elif time.monotonic() > deadlines[name]:
                    raise LocalError(
                        f"{name} did not become healthy in time:\n{self.tail(proc, 15)}"
                    )
            time.sleep(0.2)

    def stop(self, procs: Iterable[ProcessPlan], timeout: float = 15.0) -> list[str]:
        """SIGTERM each process group, SIGKILL what is left after `timeout`."""
        state = self._state()
        targets = [(p, self.pid_of(p), self.started_at(p)) for p in procs if self.is_running(p)]
        for _, pid, _ in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout
        for proc, pid, started in targets:
            while _alive(pid, self._marker(proc), started) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid, self._marker(proc), started):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)  # type: ignore[arg-type]
            _reap(pid)
        for proc in procs:
            state["processes"].pop(proc.name, None)
        self._save(state)
        return [p.name for p, _, _ in targets]

    # --- observe -----------------------------------------------------------------------

    def status(self) -> list[ProcessStatus]:
        out = []
        for proc in self.plan.processes:
            alive = self.is_running(proc)
            out.append(
                ProcessStatus(
                    name=proc.name,
                    component=proc.component,
                    pid=self.pid_of(proc) if alive else None,
                    port=proc.port,
                    alive=alive,
                    healthy=alive and _healthy(proc.url + proc.health_path),
                    log=self.log_path(proc),
                )
            )
        return out

    def tail(self, proc: ProcessPlan, lines: int = 50) -> str:
        try:
            text = self.log_path(proc).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _exit_status(pid: int | None) -> str:
    """How a child of ours ended, in words (for a start-up failure with an empty log)."""
    if pid is None:
        return "never started"
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        return "not a child of this command"
    if done == 0:
        return f"pid {pid} runs, but is no longer the process that was started"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"


def _reap(pid: int | None) -> None:
    """Collect a child of ours so it does not linger as a zombie (no-op for others)."""
    if pid is None:
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
