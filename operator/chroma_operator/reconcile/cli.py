"""`chroma-operator run`: start the operator (kopf) against the current cluster."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from chroma_operator.reconcile.kube import KubeConfig


class LogFormat(StrEnum):
    plain = "plain"
    json = "json"


def command(
    namespace: list[str] = typer.Option(
        [], "--namespace", "-n", help="Watch this namespace (repeat for several; globs allowed)"
    ),
    all_namespaces: bool = typer.Option(
        False, "--all-namespaces", "-A", help="Watch every namespace"
    ),
    standalone: bool = typer.Option(
        False, "--standalone", help="No peering: run as the only replica"
    ),
    peering: str = typer.Option(
        "chroma-operator", "--peering", help="Peering object shared by the replicas (HA)"
    ),
    priority: int = typer.Option(0, "--priority", help="Peering priority of this replica"),
    liveness: str | None = typer.Option(
        "http://0.0.0.0:8080/healthz", "--liveness", help="Liveness endpoint URL ('' to disable)"
    ),
    metrics_port: int = typer.Option(
        8081, "--metrics-port", help="Serve the operator's Prometheus metrics here (0: off)"
    ),
    log_format: LogFormat = typer.Option(LogFormat.json, "--log-format", help="plain or json"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging"),
    context: str | None = typer.Option(
        None, "--context", help="kubeconfig context (outside a cluster)"
    ),
) -> None:
    """Run the operator: reconcile ChromaClusters into shards, routers and encoders."""
    import kopf

    from chroma_operator.reconcile.handlers import register
    from chroma_operator.reconcile.kube import KubeConfig

    if not namespace and not all_namespaces:
        raise typer.BadParameter("give --namespace NS (repeatable) or --all-namespaces")
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format is LogFormat.json else kopf.LogFormat.PLAIN,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        config = KubeConfig.discover(context)
    except Exception as exc:  # the kubernetes loader raises several kinds; all mean the same
        typer.secho(
            f"error: no Kubernetes credentials ({exc}). Run inside a cluster with a service "
            "account, or point KUBECONFIG at a kubeconfig (--context picks a context).",
            fg="red",
            err=True,
        )
        raise typer.Exit(code=2) from None
    if metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(metrics_port)
        except OSError as exc:
            typer.secho(
                f"error: cannot serve metrics on port {metrics_port} ({exc.strerror}); "
                "choose another with --metrics-port (0 turns it off)",
                fg="red",
                err=True,
            )
            raise typer.Exit(code=2) from None
    if not standalone:
        _warn_without_peering(config, all_namespaces)
    registry = kopf.OperatorRegistry()
    register(registry, config)
    kopf.run(
        registry=registry,
        clusterwide=all_namespaces,
        namespaces=namespace,
        standalone=standalone,
        peering_name=None if standalone else peering,  # a name makes peering mandatory
        priority=priority,
        liveness_endpoint=liveness or None,
    )


def _warn_without_peering(config: KubeConfig, clusterwide: bool) -> None:
    """Say loudly why the operator would wait (kopf only logs it at debug level)."""
    import asyncio

    import httpx

    from chroma_operator.reconcile.kube import Kube
    from chroma_operator.reconcile.startup import missing_peering

    async def check() -> str | None:
        kube = Kube(config)
        try:
            return await missing_peering(kube, clusterwide)
        except httpx.HTTPError:
            return None  # unreachable: kopf reports that itself
        finally:
            await kube.aclose()

    warning = asyncio.run(check())
    if warning:
        logging.getLogger("chroma_operator.run").warning(warning)
