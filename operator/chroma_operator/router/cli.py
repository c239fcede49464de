"""`chroma-operator router`: placeholder until the router lands."""

import typer


def command(
    topology: str = typer.Option(..., help="Path to the topology JSON"),
    port: int = typer.Option(8080, help="Port to listen on"),
) -> None:
    """Run the query router."""
    raise typer.Exit(code=1)
