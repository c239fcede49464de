"""`chroma-operator tune`: placeholder until the tuner lands."""

import typer


def command(
    url: str = typer.Option(..., help="Router (or Chroma) base URL"),
    collection: str = typer.Option(..., help="Collection to tune"),
) -> None:
    """Measure HNSW recall and latency on a sample and recommend parameters."""
    raise typer.Exit(code=1)
