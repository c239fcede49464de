"""`chroma-operator local up|down|status|logs` and `chroma-operator demo`."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from chroma_operator.api.validate import InvalidResource, parse_cluster
from chroma_operator.local.plan import DEFAULT_PORT, LocalPlan, plan_local
from chroma_operator.local.supervisor import LocalError, Supervisor

app = typer.Typer(
    help="Run a ChromaCluster on this machine: real processes, same configs.", no_args_is_help=True
)
ROOT = Path(".chroma-local")
RESOURCE_FILE = "cluster.json"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code=code)


def _load_file(file: Path) -> Any:
    from chroma_operator.render_cli import load_clusters

    try:
        clusters = load_clusters(file)
    except InvalidResource as exc:
        for problem in exc.problems:
            typer.echo(f"{file}: {problem}", err=True)
        raise typer.Exit(code=2) from None
    if len(clusters) != 1:
        raise _fail(f"{file} holds {len(clusters)} ChromaClusters; give a file with one", 2)
    return clusters[0]


def _plan_from_dir(directory: Path) -> LocalPlan:
    """Re-plan a cluster from what `up` saved in its directory."""
    from chroma_operator.local.chroma_server import chroma_executable

    try:
        saved = json.loads((directory / RESOURCE_FILE).read_text())
    except (OSError, ValueError):
        raise _fail(
            f"no local cluster in {directory} (run `chroma-operator local up FILE` first)"
        ) from None
    cluster = parse_cluster(saved["resource"])
    return plan_local(
        cluster, directory, saved["port"], chroma=chroma_executable(), ports=saved.get("ports")
    )


def _saved_ports(home: Path) -> dict[str, int] | None:
    try:
        ports = json.loads((home / RESOURCE_FILE).read_text()).get("ports")
    except (OSError, ValueError):
        return None
    return {str(k): int(v) for k, v in ports.items()} if isinstance(ports, dict) else None


def _save(home: Path, plan: LocalPlan, resource: dict[str, Any], port: int) -> None:
    """What `down`, `status` and `logs` re-plan from: the resource and every port."""
    shards = sum(1 for p in plan.processes if p.component == "shard" and p.name.endswith("-0"))
    spec = {**resource["spec"], "shards": shards}
    (home / RESOURCE_FILE).write_text(
        json.dumps(
            {
                "resource": {**resource, "spec": spec},
                "port": port,
                "ports": {p.name: p.port for p in plan.processes},
            }
        )
    )


def _find_dir(name: str | None, directory: Path | None) -> Path:
    if directory is not None:
        return directory
    if name is not None:
        return ROOT / name
    found = sorted(p.parent for p in ROOT.glob(f"*/{RESOURCE_FILE}"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise _fail("no local cluster here (run `chroma-operator local up FILE` first)")
    raise _fail(f"several local clusters ({', '.join(p.name for p in found)}): name one")


def snippet(plan: LocalPlan) -> str:
    port = plan.router.port
    extra = ""
    if plan.topology.auth is not None:
        extra += ', headers={"X-Chroma-Token": "<a token from tokens.yaml>"}'
    if plan.topology.tls is not None:
        extra += ", ssl=True"
    return (
        "import chromadb\n"
        f'client = chromadb.HttpClient(host="127.0.0.1", port={port}{extra})\n'
        'docs = client.get_or_create_collection("docs")\n'
        'docs.add(ids=["1", "2"], documents=["a sharded vector database", "a cup of tea"])\n'
        'print(docs.query(query_texts=["distributed search"], n_results=1))'
    )


def _start(plan: LocalPlan) -> Supervisor:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    sup = Supervisor(plan)
    missing = [p for p in plan.processes if not sup.is_running(p)]
    if not missing:
        typer.echo(f"{plan.cluster} is already running at {plan.url}")
        return sup
    sup.check_ports(missing)
    backends = [p for p in missing if p.component != "router"]
    routers = [p for p in missing if p.component == "router"]
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as bar:
        tasks = {
            p.name: bar.add_task(f"{p.name:<10} starting on :{p.port}", total=1) for p in missing
        }

        def ready(p: Any) -> None:
            bar.update(tasks[p.name], completed=1, description=f"{p.name:<10} ready on :{p.port}")

        try:
            sup.wait_healthy(sup.start(backends), ready)
            sup.wait_healthy(sup.start(routers), ready)
        except (LocalError, KeyboardInterrupt):
            sup.stop(missing)  # nothing half-started is left behind
            raise
    return sup


RESTORED_MARKER = "restored.json"
"""Written once `bootstrap.fromBackup` was restored: later `up`s keep the data as it is."""


def _bootstrap_restore(plan: LocalPlan, sup: Supervisor, home: Path, boot: Any) -> None:
    """Restore `bootstrap.fromBackup` through the router before saying it is ready.

    Storage credentials come from this shell's environment (e.g. AWS_ACCESS_KEY_ID); the
    restore checks, loads and verifies counts and digests, or removes what it created, and
    then everything started here is stopped so the next `up` tries again from scratch.
    """
    import json

    from chroma_operator.build.backup import restore_source
    from chroma_operator.data.backup import BackupError
    from chroma_operator.data.chroma_http import ChromaCallError
    from chroma_operator.data.restore import restore_backup
    from chroma_operator.data.store import StoreError

    source = restore_source(boot)
    typer.echo(f"Restoring {source} into {plan.cluster} ...")
    try:
        result = restore_backup(source, plan.url, log=lambda m: typer.echo(f"  {m}"))
    except (BackupError, ChromaCallError, StoreError, OSError) as exc:
        sup.stop(plan.processes)
        raise _fail(f"restore of {source} failed: {exc}; stopped the cluster") from None
    except KeyboardInterrupt:
        sup.stop(plan.processes)
        typer.echo("\nRestore interrupted; stopped the cluster.")
        raise typer.Exit(code=130) from None
    (home / RESTORED_MARKER).write_text(
        json.dumps(
            {"from": source, "backupId": result.manifest.backup_id, "records": result.records}
        )
    )
    typer.echo(
        f"Restored {result.records:,} records from {source} in {result.seconds:.1f}s, verified."
    )


@app.command("up")
def up(
    file: Path = typer.Argument(..., help="ChromaCluster YAML file"),
    directory: Path | None = typer.Option(
        None, "--dir", help="Data and state [default: .chroma-local/NAME]"
    ),
    port: int = typer.Option(
        DEFAULT_PORT, "--port", help="Router port; shards and encoder use the next ones"
    ),
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Return once healthy; stop with `local down`"
    ),
    demo: bool = typer.Option(False, "--demo", help="Index a small corpus and run a few searches"),
    secret: list[str] = typer.Option(
        [],
        "--secret",
        help="NAME=FILE: a Secret the cluster names (spec.auth, spec.tls), read from a "
        "YAML file of its data keys; repeatable",
    ),
) -> None:
    """Start every shard, the encoder and the router; data persists in --dir."""
    from chroma_operator.local.chroma_server import chroma_executable
    from chroma_operator.local.reshard import needs_move, reshard_local, serving_plan
    from chroma_operator.local.secrets import SecretError, load_secrets, parse_secret_args
    from chroma_operator.reshard.plan import ReshardRefused

    # Ctrl-C stops what `up` started, even where SIGINT came in ignored (a script's `cmd &`
    # starts its jobs so, and Python then never raises KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cluster = _load_file(file)
    home = directory or ROOT / cluster.name
    try:
        secrets = load_secrets(cluster.spec, parse_secret_args(secret))
    except SecretError as exc:
        raise _fail(str(exc), 2) from None
    resource = cluster.model_dump(mode="json", by_alias=True, exclude_none=True)
    ports = _saved_ports(home)
    move = needs_move(cluster, home)
    # A cluster that already runs here keeps its ports; mid-move it runs both counts' shards.
    plan = serving_plan(cluster, home, port, chroma_executable(), ports, secrets)
    home.mkdir(parents=True, exist_ok=True)
    if not move:
        _save(home, plan, resource, port)
    try:
        sup = _start(plan)
    except LocalError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        typer.echo("\nInterrupted during start-up; stopped what had started.")
        raise typer.Exit(code=130) from None
    if move:
        try:
            plan = reshard_local(
                plan,
                cluster,
                home,
                port,
                chroma_executable(),
                echo=typer.echo,
                save=lambda p: _save(home, p, resource, port),
            )
            sup = Supervisor(plan)
        except ReshardRefused as exc:
            raise _fail(f"{file}: {exc}; nothing was changed", 2) from None
        except LocalError as exc:
            raise _fail(str(exc)) from None
        except KeyboardInterrupt:
            stopped = Supervisor(_plan_from_dir(home)).stop(_plan_from_dir(home).processes)
            typer.echo(
                f"\nMove interrupted; stopped {len(stopped)} processes. "
                "`chroma-operator local up FILE` carries the move on from where it was."
            )
            raise typer.Exit(code=130) from None
    boot = cluster.spec.bootstrap.from_backup if cluster.spec.bootstrap else None
    if boot is not None and not (home / RESTORED_MARKER).exists():
        _bootstrap_restore(plan, sup, home, boot)
    # From here on, Ctrl-C (or SIGTERM) stops everything that was started, wherever it
    # lands: during the demo, or between two lines of output.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        typer.secho(
            f"\n{plan.cluster}: {len(plan.processes)} processes, router at {plan.url}", bold=True
        )
        typer.echo("Connect with the stock client:\n\n" + snippet(plan) + "\n")
        if demo and plan.topology.auth is not None:
            typer.echo("--demo is skipped: the cluster has auth on (spec.auth).")
        elif demo:
            from chroma_operator.local.demo import DemoError, run_demo

            try:
                run_demo(plan)
            except DemoError as exc:  # the cluster stays up; the demo says why it stopped
                typer.secho(f"error: {exc}", fg="red", err=True)
        if detach:
            typer.echo(
                f"Running in the background; stop with: chroma-operator local down --dir {home}"
            )
            return
        typer.echo("Press Ctrl-C to stop (data is kept in " + str(home) + ").")
        _watch(sup)
    except KeyboardInterrupt:
        typer.echo("\nStopping...")
    stopped = sup.stop(sup.plan.processes)
    typer.echo(f"Stopped {len(stopped)} processes.")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _watch(sup: Supervisor) -> None:
    """Run until interrupted, saying when a process stops on its own."""
    reported: set[str] = set()
    while True:
        for proc in sup.plan.processes:
            if proc.name not in reported and not sup.is_running(proc):
                reported.add(proc.name)
                typer.secho(
                    f"{proc.name} stopped; see `chroma-operator local logs {proc.name}`",
                    fg="yellow",
                    err=True,
                )
        time.sleep(1.0)


@app.command("down")
def down(
    name: str | None = typer.Argument(None, help="Cluster name (when several run here)"),
    directory: Path | None = typer.Option(None, "--dir", help="The directory given to `up`"),
) -> None:
    """Stop every process of a local cluster; its data stays for the next `up`."""
    plan = _plan_from_dir(_find_dir(name, directory))
    stopped = Supervisor(plan).stop(plan.processes)
    typer.echo(
        f"Stopped {len(stopped)} processes of {plan.cluster}; data kept in {plan.directory}."
    )


REPLICA_STYLE = {
    "in-sync": "[green]",
    "stale": "[yellow]",
    "repairing": "[red]",
    "fenced": "[blue]",
}


def replica_states(router_url: str, directory: Path) -> dict[str, dict[str, Any]]:
    """Each replica's state as the router sees it ({} when the router does not answer);
    over HTTPS verified with the CA the cluster's topology names."""
    import httpx

    from chroma_operator.local.reshard import topology_path
    from chroma_operator.reshard.file_runtime import topology_trust

    try:
        verify = topology_trust(topology_path(directory))
        resp = httpx.get(router_url + "/internal/replicas", timeout=2.0, verify=verify)
        return {r["name"]: r for r in resp.json()["replicas"]} if resp.status_code == 200 else {}
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return {}


@app.command("status")
def status(
    name: str | None = typer.Argument(None, help="Cluster name (when several run here)"),
    directory: Path | None = typer.Option(None, "--dir", help="The directory given to `up`"),
) -> None:
    """Each process: pid, port, health. Exit code 1 when something is down."""
    from rich.console import Console
    from rich.table import Table

    plan = _plan_from_dir(_find_dir(name, directory))
    rows = Supervisor(plan).status()
    replicas = replica_states(plan.url, Path(plan.directory))
    table = Table(title=f"{plan.cluster} ({plan.url})")
    for col in ("process", "pid", "port", "state", "replica", "pending hints"):
        table.add_column(col)
    for r in rows:
        state = "[green]healthy" if r.healthy else ("[yellow]starting" if r.alive else "[red]down")
        rep = replicas.get(r.name)
        rep_state = "-" if rep is None else REPLICA_STYLE.get(rep["state"], "") + rep["state"]
        hints = "-" if rep is None else str(rep["pending_hints"])
        table.add_row(r.name, str(r.pid or "-"), str(r.port), state, rep_state, hints)
    Console().print(table)
    if not all(r.healthy for r in rows):
        typer.echo(
            "Some processes are down: `chroma-operator local up FILE` restarts what is missing."
        )
        raise typer.Exit(code=1)


@app.command("logs")
def logs(
    component: str | None = typer.Argument(
        None, help="Process (shard-0-0, encoder, router) or component"
    ),
    name: str | None = typer.Option(None, "--name", help="Cluster name (when several run here)"),
    directory: Path | None = typer.Option(None, "--dir", help="The directory given to `up`"),
    lines: int = typer.Option(40, "--lines", "-n", help="Lines from the end of each log"),
) -> None:
    """Print the end of the processes' logs."""
    plan = _plan_from_dir(_find_dir(name, directory))
    sup = Supervisor(plan)
    chosen = [p for p in plan.processes if component in (None, p.name, p.component)]
    if not chosen:
        names = ", ".join(p.name for p in plan.processes)
        raise _fail(f"no process {component!r}; there are: {names}")
    for proc in chosen:
        typer.secho(f"==> {proc.name} ({sup.log_path(proc)})", bold=True)
        typer.echo(sup.tail(proc, lines))


def demo_command(
    name: str | None = typer.Argument(None, help="Cluster name (when several run here)"),
    directory: Path | None = typer.Option(None, "--dir", help="The directory given to `up`"),
    limit: int = typer.Option(3000, help="How many docstrings to index"),
) -> None:
    """Index Python's standard-library docstrings into a running local cluster and search them."""
    from chroma_operator.local.demo import DemoError, run_demo

    try:
        run_demo(_plan_from_dir(_find_dir(name, directory)), limit=limit)
    except DemoError as exc:
        raise _fail(str(exc)) from None
