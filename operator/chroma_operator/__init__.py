"""chroma-operator: sharded Chroma vector-database clusters on Kubernetes (and on one machine)."""

__version__ = "0.1.0"
