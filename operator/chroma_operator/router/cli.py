"""`chroma-operator router`: serve the query router over a topology file."""

from __future__ import annotations

import typer


def command(
    topology: str = typer.Option(..., help="Path to the topology JSON (reloaded on change)"),
    port: int = typer.Option(8080, help="Port to listen on"),
    host: str = typer.Option("0.0.0.0", help="Address to bind"),
    log_level: str = typer.Option("info", help="debug, info, warning, error"),
    reload_interval: float = typer.Option(
        1.0, help="Seconds between checks of the topology file"
    ),
    workers_backlog: int = typer.Option(2048, help="Listen backlog"),
    access_log: bool = typer.Option(False, help="Log every request"),
) -> None:
    """Run the query router: Chroma's HTTP API v2 in front of the cluster's shards."""
    import logging

    import uvicorn

    from chroma_operator.router.app import create_app

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(topology, reload_interval=reload_interval)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=access_log,
        backlog=workers_backlog,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
    )
