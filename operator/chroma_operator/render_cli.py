"""`chroma-operator render` and `chroma-operator crd`: the builders' output as YAML or JSON."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

import typer
import yaml

from chroma_operator import yamlio
from chroma_operator.api.crd import crd_yaml
from chroma_operator.api.models import ChromaCluster
from chroma_operator.api.reference import reference_markdown
from chroma_operator.api.validate import InvalidResource, parse_cluster
from chroma_operator.build import Manifest, build_all, owner_of

EXIT_INVALID = 2


class OutputFormat(StrEnum):
    yaml = "yaml"
    json = "json"


def fail(problems: list[str], source: str) -> typer.Exit:
    """Print one line per problem on stderr and return the exit to raise."""
    for problem in problems:
        typer.echo(f"{source}: {problem}", err=True)
    return typer.Exit(code=EXIT_INVALID)


def load_clusters(path: Path) -> list[ChromaCluster]:
    """Read every ChromaCluster in a YAML file; raise InvalidResource naming what is wrong."""
    try:
        text = path.read_text() if str(path) != "-" else sys.stdin.read()
    except OSError as exc:
        raise InvalidResource([f"cannot read file: {exc.strerror}"]) from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise InvalidResource([f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    if not docs:
        raise InvalidResource(["no ChromaCluster in the file"])
    clusters: list[ChromaCluster] = []
    problems: list[str] = []
    for i, doc in enumerate(docs):
        prefix = f"document {i + 1}: " if len(docs) > 1 else ""
        try:
            clusters.append(parse_cluster(doc))
        except InvalidResource as exc:
            problems += [prefix + p for p in exc.problems]
    if problems:
        raise InvalidResource(problems)
    return clusters


def render_manifests(clusters: list[ChromaCluster], namespace: str) -> list[Manifest]:
    out: list[Manifest] = []
    for cluster in clusters:
        out += build_all(cluster, owner_of(cluster, namespace))
    return out


def dump(manifests: list[Manifest], fmt: OutputFormat) -> str:
    if fmt is OutputFormat.json:
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}, indent=2) + "\n"
    return yamlio.dump_all(manifests)


def render_command(
    file: Path = typer.Argument(
        ..., help="ChromaCluster YAML file ('-' for stdin)", allow_dash=True
    ),
    namespace: str = typer.Option(
        "default", "--namespace", "-n", help="Namespace for resources that name none"
    ),
    output: OutputFormat = typer.Option(OutputFormat.yaml, "--output", "-o", help="yaml or json"),
) -> None:
    """Print every object the operator would create for FILE, for review or GitOps."""
    try:
        clusters = load_clusters(file)
    except InvalidResource as exc:
        raise fail(exc.problems, str(file)) from None
    typer.echo(dump(render_manifests(clusters, namespace), output), nl=False)


def crd_command(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file"),
    reference: bool = typer.Option(
        False, "--reference", help="Print the field reference (Markdown)"
    ),
    kind: str = typer.Option(
        "ChromaCluster", "--kind", help="ChromaCluster or ChromaBackup (the CRD printed)"
    ),
) -> None:
    """Print a CustomResourceDefinition (generated from the models)."""
    from chroma_operator.api.backup_crd import backup_crd_yaml

    crds = {"chromacluster": crd_yaml, "chromabackup": backup_crd_yaml}
    make = crds.get(kind.lower())
    if make is None:
        raise typer.BadParameter("ChromaCluster or ChromaBackup", param_hint="--kind")
    text = reference_markdown() if reference else make()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
