"""`chroma-operator router`: serve the query router over a topology file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from chroma_operator.topology import Topology


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def startup_problem(topo: Topology) -> str | None:
    """Why the router cannot serve this topology's auth or TLS settings, or None."""
    from chroma_operator.router.tls import check_files
    from chroma_operator.router.tokens import TokensFileError, parse_tokens

    if topo.auth is not None:
        try:
            parse_tokens(Path(topo.auth.tokens_file).read_bytes())
        except OSError as exc:
            return f"cannot read the tokens file {topo.auth.tokens_file}: {exc.strerror}"
        except TokensFileError as exc:
            return f"{topo.auth.tokens_file}: {exc}"
    return check_files(topo.tls)


def command(
    topology: str = typer.Option(..., help="Path to the topology JSON (reloaded on change)"),
    port: int = typer.Option(8080, help="Port to listen on"),
    host: str = typer.Option("0.0.0.0", help="Address to bind"),
    log_level: Annotated[
        LogLevel, typer.Option(help="Log level", case_sensitive=False)
    ] = LogLevel.info,
    reload_interval: float = typer.Option(1.0, help="Seconds between checks of the topology file"),
    backlog: int = typer.Option(2048, help="Listen backlog (pending connections)"),
    keep_alive: int = typer.Option(
        75,
        help="Seconds an idle client connection stays open. Well above uvicorn's 5 s: "
        "pooling clients (chromadb's async client) otherwise race the close and fail a "
        "request with 'Server disconnected'",
    ),
    access_log: bool = typer.Option(
        False, help="Log every request (with its trace id; 5xx answers are always logged)"
    ),
) -> None:
    """Run the query router: Chroma's HTTP API v2 in front of the cluster's shards."""
    import logging

    import uvicorn

    from chroma_operator.heap import freeze_startup_heap
    from chroma_operator.router.app import create_app
    from chroma_operator.router.one_write import OneWriteHttpToolsProtocol
    from chroma_operator.router.tls import uvicorn_ssl

    logging.basicConfig(
        level=log_level.value.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from pydantic import ValidationError

    try:  # refuse a missing or broken file up front, in one line
        topo = Topology.from_json(Path(topology).read_bytes())
    except OSError as exc:
        typer.secho(f"error: cannot read topology {topology}: {exc.strerror}", fg="red", err=True)
        raise typer.Exit(code=2) from None
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        typer.secho(f"error: {topology} is not a valid topology: {first}", fg="red", err=True)
        raise typer.Exit(code=2) from None
    problem = startup_problem(topo)
    if problem is not None:  # auth or TLS asked for but unusable: never start open
        typer.secho(f"error: {problem}", fg="red", err=True)
        raise typer.Exit(code=2)
    app = create_app(topology, reload_interval=reload_interval, access_log=access_log)
    freeze_startup_heap()  # full collections then skip what lives as long as the process
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level.value,
        access_log=False,  # the app logs each request itself, with its trace id
        backlog=backlog,
        timeout_keep_alive=keep_alive,
        proxy_headers=False,  # a Service, not a proxy, is in front; and it costs per request
        loop="uvloop",
        http=OneWriteHttpToolsProtocol,  # httptools, each answer in one write
        timeout_graceful_shutdown=5,
        **uvicorn_ssl(topo.tls),
    )
