"""`chroma-operator render` and `chroma-operator crd` (placeholder)."""

import typer


def render_command(file: str) -> None:
    """Print every object the operator would create for FILE."""
    raise typer.Exit(code=1)


def crd_command() -> None:
    """Print the ChromaCluster CRD."""
    raise typer.Exit(code=1)
