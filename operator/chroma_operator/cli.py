"""The `chroma-operator` command: one entry point, one subcommand per program.

Each subcommand lives next to the code it runs (`<component>/cli.py`) and imports its
heavy dependencies lazily, so `chroma-operator --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from chroma_operator.build import naming
from chroma_operator.data import cli as backup_cli
from chroma_operator.encoder import cli as encoder_cli
from chroma_operator.install import cli as install_cli
from chroma_operator.local import cli as local_cli
from chroma_operator.reconcile import cli as operator_cli
from chroma_operator.render_cli import crd_command, render_command
from chroma_operator.repair import cli as repair_cli
from chroma_operator.router import cli as router_cli
from chroma_operator.tuner import cli as tuner_cli

app = typer.Typer(
    name="chroma-operator",
    help="Run sharded Chroma clusters: on Kubernetes, or on one machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command("run")(operator_cli.command)
app.command("render")(render_command)
app.command("crd")(crd_command)
app.command("router")(router_cli.command)
app.command("encoder")(encoder_cli.command)
app.command("tune")(tuner_cli.command)
app.command("repair")(repair_cli.command)
app.add_typer(local_cli.app, name="local")
app.add_typer(backup_cli.app, name="backup")
app.command("demo")(local_cli.demo_command)
app.add_typer(install_cli.app)


def trust_cluster_ca() -> None:
    """Trust the CA file named in `CHROMA_CA_FILE` when it exists (Jobs name the TLS
    Secret's ca.crt there); httpx, under every client the commands use, reads
    `SSL_CERT_FILE`. A Secret without ca.crt (a publicly trusted certificate) leaves the
    system's trust as it is, as the routers do for their peers."""
    ca = os.environ.get(naming.CA_FILE_ENV)
    if ca and Path(ca).is_file():
        os.environ.setdefault("SSL_CERT_FILE", ca)


def main() -> None:
    trust_cluster_ca()
    app()
