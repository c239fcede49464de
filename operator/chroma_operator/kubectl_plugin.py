"""`kubectl chroma`: day-2 operations on ChromaClusters from the command line.

Installed as the `kubectl-chroma` console script; kubectl runs any `kubectl-<name>`
found on PATH as `kubectl <name>`. Every command is a read of the cluster's status or a
write of one annotation (the operator does the work), through the official Kubernetes
client, so kubeconfig, `--context` and `-n` behave as they do for kubectl.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any, NoReturn

import typer

from chroma_operator.api import annotations as ann
from chroma_operator.api.models import API_GROUP, API_VERSION, PLURAL
from chroma_operator.build import naming

app = typer.Typer(
    name="kubectl chroma",
    help="Day-2 operations on ChromaClusters: status, hibernate, pause, fence, tune, backup.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
BACKUP_PLURAL = "chromabackups"
Obj = dict[str, Any]


@dataclass
class Target:
    api: Any  # kubernetes.client.ApiClient
    namespace: str


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


@app.callback()
def main_options(
    ctx: typer.Context,
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", help="Namespace (the context's when unset)"
    ),
    context: str | None = typer.Option(None, "--context", help="kubeconfig context"),
    kubeconfig: str | None = typer.Option(
        None, "--kubeconfig", help="kubeconfig file (KUBECONFIG or ~/.kube/config when unset)"
    ),
) -> None:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        cfg = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=cfg
        )
    except (ConfigException, OSError) as exc:
        _fail(f"cannot load the kubeconfig: {exc}", 2)
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    ns = namespace or (chosen or {}).get("context", {}).get("namespace") or "default"
    ctx.obj = Target(client.ApiClient(cfg), ns)


def _objects(t: Target) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(t.api)


def _call(fn: Any, *args: Any, not_found: str | None = None, **kwargs: Any) -> Any:
    """Call the API; errors become one clear line (`not_found` replaces a 404's)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        if exc.status == 404 and not_found:
            _fail(not_found)
        try:
            message = json.loads(exc.body or "{}").get("message") or exc.reason
        except ValueError:
            message = exc.reason
        _fail(f"{exc.status} {message}")
    except HTTPError as exc:
        _fail(f"cannot reach the API server: {exc}", 2)


def _get(t: Target, name: str) -> Obj:
    obj: Obj = _call(
        _objects(t).get_namespaced_custom_object, API_GROUP, API_VERSION, t.namespace, PLURAL, name
    )
    return obj


def _annotate(t: Target, name: str, values: dict[str, str | None]) -> None:
    _get(t, name)  # a clear "not found" first
    _call(
        _objects(t).patch_namespaced_custom_object,
        API_GROUP,
        API_VERSION,
        t.namespace,
        PLURAL,
        name,
        {"metadata": {"annotations": values}},
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def status_lines(obj: Obj) -> list[str]:
    """What `kubectl chroma status` prints: one fact a line."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    fenced = set((status.get("fence") or {}).get("replicas") or [])
    lines = [
        f"Cluster:   {meta.get('namespace')}/{meta['name']}",
        f"Phase:     {status.get('phase', 'Pending')}"
        + (f" ({status['message']})" if status.get("message") else ""),
        f"Ready:     {status.get('ready', '-')} shards",
        f"Version:   {spec.get('image') or spec.get('version', '-')}",
    ]
    if ann.paused(annotations):
        lines.append("Reconcile: paused")
    shards = status.get("shards") or []
    lines.append("Shards:")
    replicas = int(spec.get("replicas", 1))
    for s in shards:
        states = []
        data = {str(x.get("name")): x for x in s.get("replicaStates") or []}
        for r in range(replicas):
            name = ann.replica_name(int(s["index"]), r)
            state = "ready" if r < int(s.get("readyReplicas", 0)) else "not ready"
            line = f"{name} {'fenced' if name in fenced else state}"
            if name in data:  # what the routers say of its data (replicas >= 2)
                pending = int(data[name].get("pendingHints") or 0)
                line += f", {data[name].get('state')}" + (
                    f" ({pending} hints pending)" if pending else ""
                )
            states.append(line)
        lines.append(f"  shard {s['index']}: {s.get('readyReplicas', 0)}/{s['replicas']} ready")
        lines.extend(f"    {x}" for x in states)
    problem = (status.get("fence") or {}).get("problem")
    if problem:
        lines.append(f"Fence:     {problem}")
    up = status.get("upgrade") or {}
    if up:
        lines.append(
            f"Upgrade:   {up.get('state')} {up.get('from')} -> {up.get('to')} "
            f"({up.get('shardsDone', 0)}/{up.get('shards', '?')} shards)"
        )
    slo = status.get("slo") or {}
    for name, o in sorted((slo.get("objectives") or {}).items()):
        lines.append(f"SLO:       {name}: {json.dumps(o, sort_keys=True)}")
    if not slo:
        lines.append("SLO:       not evaluated yet")
    applied = (status.get("tuning") or {}).get("applied") or {}
    lines.append(
        f"Tuning:    efSearch {applied['efSearch']} ({applied.get('indexReload', '')})"
        if applied.get("efSearch")
        else "Tuning:    nothing applied"
    )
    backup = status.get("lastBackup") or status.get("backup")
    lines.append(f"Backup:    {json.dumps(backup, sort_keys=True) if backup else 'none recorded'}")
    return lines


@app.command()
def status(ctx: typer.Context, name: str) -> None:
    """Shards, replicas and their states, phase, SLO, tuning, last backup."""
    for line in status_lines(_get(ctx.obj, name)):
        typer.echo(line)


@app.command()
def hibernate(ctx: typer.Context, name: str) -> None:
    """Scale shards and encoder to zero; every volume is kept."""
    _annotate(ctx.obj, name, {ann.HIBERNATION: "on"})
    typer.echo(f"{name}: hibernating (wake it with `kubectl chroma wake {name}`)")


@app.command()
def wake(ctx: typer.Context, name: str) -> None:
    """Bring a hibernated cluster back with its data."""
    _annotate(ctx.obj, name, {ann.HIBERNATION: "off"})
    typer.echo(f"{name}: waking up")


@app.command()
def pause(ctx: typer.Context, name: str) -> None:
    """Stop the operator from changing anything in this cluster."""
    _annotate(ctx.obj, name, {ann.RECONCILE: ann.PAUSED_VALUE})
    typer.echo(f"{name}: reconciliation paused (`kubectl chroma resume {name}` to resume)")


@app.command()
def resume(ctx: typer.Context, name: str) -> None:
    """Resume reconciliation; spec changes made meanwhile are applied."""
    _annotate(ctx.obj, name, {ann.RECONCILE: None})
    typer.echo(f"{name}: reconciliation resumed")


def _fenced(obj: Obj) -> list[str]:
    raw = (obj["metadata"].get("annotations") or {}).get(ann.FENCED)
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


@app.command()
def fence(ctx: typer.Context, name: str, replicas: list[str]) -> None:
    """Take replicas (shard-<i>-<r>) out of reads and writes; their pods stay up."""
    obj = _get(ctx.obj, name)
    spec = obj.get("spec") or {}
    wanted = sorted(set(_fenced(obj)) | set(replicas))
    check = ann.parse_fence(
        {ann.FENCED: json.dumps(wanted)}, int(spec.get("shards", 2)), int(spec.get("replicas", 1))
    )
    if not check.valid:
        _fail("; ".join(check.problems))
    _annotate(ctx.obj, name, {ann.FENCED: json.dumps(check.replicas)})
    typer.echo(f"{name}: fenced {', '.join(check.replicas)}")


@app.command()
def unfence(
    ctx: typer.Context,
    name: str,
    replicas: list[str] = typer.Argument(None, help="Replicas to return (all when none given)"),
) -> None:
    """Return fenced replicas to service; the routers replay what they missed."""
    obj = _get(ctx.obj, name)
    left = [r for r in _fenced(obj) if replicas and r not in replicas]
    _annotate(ctx.obj, name, {ann.FENCED: json.dumps(left) if left else None})
    typer.echo(f"{name}: " + (f"still fenced {', '.join(left)}" if left else "nothing fenced"))


@app.command()
def tune(ctx: typer.Context, name: str) -> None:
    """Run an HNSW tuning Job now."""
    _annotate(ctx.obj, name, {naming.TUNE_ANNOTATION: _now()})
    typer.echo(f"{name}: tuning requested")


@app.command()
def repair(ctx: typer.Context, name: str) -> None:
    """Ask for a repair pass (a new value of the repair annotation)."""
    _annotate(ctx.obj, name, {ann.REPAIR: _now()})
    typer.echo(f"{name}: repair requested")


def _serves_backups(t: Target) -> bool:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        found = client.CustomObjectsApi(t.api).get_api_resources(API_GROUP, API_VERSION)
    except ApiException:
        return False
    return any(r.name == BACKUP_PLURAL for r in found.resources or [])


@app.command()
def backup(ctx: typer.Context, name: str) -> None:
    """Take a backup now: a ChromaBackup object (when its CRD is installed)."""
    t: Target = ctx.obj
    _get(t, name)
    if not _serves_backups(t):
        _fail(
            f"the ChromaBackup CRD ({BACKUP_PLURAL}.{API_GROUP}) is not installed in this "
            "cluster: install the operator's CRDs (kubectl apply -f crds/) and try again"
        )
    backup_name = f"{name}-{_now().lower()}"
    body: Obj = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "ChromaBackup",
        "metadata": {"name": backup_name, "namespace": t.namespace},
        "spec": {"cluster": name},
    }
    _call(
        _objects(t).create_namespaced_custom_object,
        API_GROUP,
        API_VERSION,
        t.namespace,
        BACKUP_PLURAL,
        body,
    )
    typer.echo(f"{name}: ChromaBackup {backup_name} created")


@app.command()
def logs(
    ctx: typer.Context,
    name: str,
    shard: int = typer.Option(0, "--shard", help="Shard index"),
    replica: int = typer.Option(0, "--replica", help="Replica index"),
    container: str = typer.Option("chroma", "--container", "-c", help="chroma or router"),
    tail: int | None = typer.Option(None, "--tail", help="Last lines only"),
) -> None:
    """Logs of one shard replica (its chroma or router container)."""
    from kubernetes import client

    t: Target = ctx.obj
    spec = _get(t, name).get("spec") or {}  # a clear "not found" for the cluster first
    shards, replicas = int(spec.get("shards") or 1), int(spec.get("replicas") or 1)
    if not 0 <= shard < shards:
        _fail(f"--shard {shard}: {name} has {shards} shard(s), 0..{shards - 1}")
    if not 0 <= replica < replicas:
        _fail(f"--replica {replica}: {name} has {replicas} replica(s) a shard, 0..{replicas - 1}")
    pod = f"{naming.shard(name, shard)}-{replica}"
    text = _call(
        client.CoreV1Api(t.api).read_namespaced_pod_log,
        pod,
        t.namespace,
        container=container,
        tail_lines=tail,
        not_found=f"pod {pod} (shard {shard}, replica {replica} of {name}) does not exist: "
        f"not scheduled yet, or hibernated? (kubectl chroma status {name})",
    )
    typer.echo(text, nl=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
