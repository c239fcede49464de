"""`chroma-operator encoder`: placeholder until the encoder lands."""

import typer


def command(
    model: str = typer.Option(..., help="Model directory or id"),
    port: int = typer.Option(8080, help="Port to listen on"),
) -> None:
    """Run the embedding encoder."""
    raise typer.Exit(code=1)
