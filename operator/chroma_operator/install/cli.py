"""`chroma-operator install`: plain manifests for `kubectl apply`, and the chart's generated files."""

from __future__ import annotations

from pathlib import Path

import typer

from chroma_operator.api.models import DEFAULT_OPERATOR_IMAGE

app = typer.Typer(
    name="install",
    help="Install the operator: plain manifests, or refresh the Helm chart's generated files.",
    no_args_is_help=True,
)


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@app.command("generate")
def generate(
    namespace: str = typer.Option(
        "chroma-operator", "--namespace", "-n", help="Namespace the operator runs in"
    ),
    watch_namespaces: str = typer.Option(
        "",
        "--watch-namespaces",
        help="Comma-separated namespaces to watch (Roles only); default all",
    ),
    image: str = typer.Option(DEFAULT_OPERATOR_IMAGE, "--image", help="Operator image reference"),
    replicas: int = typer.Option(
        1, "--replicas", min=1, help="Operator replicas (more than one: HA through kopf peering)"
    ),
    name: str = typer.Option("chroma-operator", "--name", help="Name of the operator's objects"),
    crds: bool = typer.Option(True, "--crds/--no-crds", help="Include the CRDs"),
    create_namespace: bool = typer.Option(
        True, "--create-namespace/--no-create-namespace", help="Include the Namespace object"
    ),
) -> None:
    """Print CRDs, RBAC and the operator as one YAML stream for `kubectl apply -f -`."""
    from chroma_operator import yamlio
    from chroma_operator.install.manifests import InstallOptions, build_install

    opts = InstallOptions(
        name=name,
        namespace=namespace,
        watch_namespaces=_split(watch_namespaces),
        image=image,
        replicas=replicas,
        install_crds=crds,
        create_namespace=create_namespace,
    )
    typer.echo(yamlio.dump_all(build_install(opts)), nl=False)


@app.command("chart-files")
def chart_files_command(
    chart: Path = typer.Option(
        Path("charts/chroma-operator"), "--chart", help="The chart directory"
    ),
    check: bool = typer.Option(False, "--check", help="Only report stale files (exit 1 if any)"),
) -> None:
    """Write the chart's CRD and RBAC files from the code (or check they are current)."""
    from chroma_operator.install.chart_files import stale_files, write_chart_files

    if check:
        stale = stale_files(chart)
        for rel in stale:
            typer.echo(f"{chart / rel}: out of date", err=True)
        raise typer.Exit(code=1 if stale else 0)
    for rel in write_chart_files(chart):
        typer.echo(f"wrote {chart / rel}")
