"""Secrets on one machine: `local up --secret NAME=PATH` reads a Secret's data keys from
a local YAML file, so the same ChromaCluster file runs unchanged.

The file holds the data keys as a mapping (`tokens.yaml: |` ...), or is a whole Secret
manifest (`stringData`, or base64 `data`, as `kubectl get secret -o yaml` prints it).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.build.naming import TOKENS_KEY

TLS_KEYS = ("tls.crt", "tls.key")


class SecretError(ValueError):
    """A Secret the cluster needs is missing or unusable (message names no secret value)."""


def parse_secret_args(args: list[str]) -> dict[str, Path]:
    """`NAME=PATH` options as a mapping."""
    out: dict[str, Path] = {}
    for arg in args:
        name, sep, path = arg.partition("=")
        if not sep or not name or not path:
            raise SecretError(f"--secret {arg!r}: expected NAME=PATH")
        out[name] = Path(path)
    return out


def read_secret_file(path: Path) -> dict[str, str]:
    """The data keys of a Secret from a local YAML file."""
    try:
        doc: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SecretError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise SecretError(f"{path} is not valid YAML") from None
    if not isinstance(doc, dict):
        raise SecretError(f"{path} must map the Secret's keys to their values")
    if doc.get("kind") == "Secret":
        data: dict[str, Any] = {}
        for key, value in (doc.get("data") or {}).items():
            try:
                data[key] = base64.b64decode(str(value), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise SecretError(f"{path}: data.{key} is not base64 of UTF-8 text") from None
        data.update(doc.get("stringData") or {})
        doc = data
    bad = [str(k) for k, v in doc.items() if not isinstance(v, str)]
    if bad:
        raise SecretError(f"{path}: values must be text: {', '.join(bad)}")
    return {str(k): v for k, v in doc.items()}


def required_keys(spec: ChromaClusterSpec) -> dict[str, tuple[str, ...]]:
    """The Secrets the spec names, and the keys each must hold."""
    need: dict[str, tuple[str, ...]] = {}
    if spec.auth.secret_name:
        need[spec.auth.secret_name] = (TOKENS_KEY,)
    if spec.tls.secret_name:
        need[spec.tls.secret_name] = need.get(spec.tls.secret_name, ()) + TLS_KEYS
    return need


def load_secrets(spec: ChromaClusterSpec, given: Mapping[str, Path]) -> dict[str, dict[str, str]]:
    """Every Secret the spec names, read from the files given; errors say what to pass."""
    out: dict[str, dict[str, str]] = {}
    for name, keys in required_keys(spec).items():
        if name not in given:
            raise SecretError(
                f"the cluster names Secret {name!r}: pass --secret {name}=FILE "
                f"(a YAML file with key(s) {', '.join(keys)})"
            )
        data = read_secret_file(given[name])
        missing = [k for k in keys if k not in data]
        if missing:
            raise SecretError(f"{given[name]} (Secret {name}) lacks {', '.join(missing)}")
        out[name] = data
    return out
