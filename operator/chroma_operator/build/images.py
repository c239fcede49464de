"""Image references: the spec's override, else the defaults that match this release."""

from __future__ import annotations

from chroma_operator.api.models import (
    DEFAULT_ENCODER_IMAGE,
    DEFAULT_OPERATOR_IMAGE,
    ChromaClusterSpec,
)


def chroma_image(spec: ChromaClusterSpec) -> str:
    return spec.image or f"chromadb/chroma:{spec.version}"


def router_image(spec: ChromaClusterSpec) -> str:
    return spec.router.image or DEFAULT_OPERATOR_IMAGE


def encoder_image(spec: ChromaClusterSpec) -> str:
    return spec.encoder.image or DEFAULT_ENCODER_IMAGE
