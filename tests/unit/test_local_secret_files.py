"""Reading Secrets from local files for `local up --secret` (pure parts)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.api.validate import parse_cluster
from chroma_operator.local.plan import plan_local
from chroma_operator.local.secrets import (
    SecretError,
    load_secrets,
    parse_secret_args,
    read_secret_file,
)


def spec(**kw: object) -> ChromaClusterSpec:
    return ChromaClusterSpec.model_validate(kw)


def test_data_keys_or_a_secret_manifest(tmp_path: Path) -> None:
    plain = tmp_path / "a.yaml"
    plain.write_text("tokens.yaml: |\n  tokens: []\n")
    assert read_secret_file(plain) == {"tokens.yaml": "tokens: []\n"}
    manifest = tmp_path / "b.yaml"
    manifest.write_text(
        "kind: Secret\ndata:\n  tls.crt: " + base64.b64encode(b"CERT").decode() + "\n"
        "stringData:\n  tls.key: KEY\n"
    )
    assert read_secret_file(manifest) == {"tls.crt": "CERT", "tls.key": "KEY"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2]", "must map"),
        ("a: [", "not valid YAML"),
        ("kind: Secret\ndata: {k: '!!'}", "base64"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SecretError, match=problem):
        read_secret_file(path)


def test_missing_secret_or_key_says_what_to_pass(tmp_path: Path) -> None:
    s = spec(auth={"secretName": "toks"}, tls={"secretName": "cert"})
    with pytest.raises(SecretError, match="--secret toks=FILE"):
        load_secrets(s, {})
    path = tmp_path / "t.yaml"
    path.write_text("other: x\n")
    with pytest.raises(SecretError, match=r"lacks tokens\.yaml"):
        load_secrets(s, {"toks": path})
    with pytest.raises(SecretError, match="NAME=PATH"):
        parse_secret_args(["toks"])


def test_plan_writes_secrets_where_the_topology_points(tmp_path: Path) -> None:
    cluster = parse_cluster(
        {
            "apiVersion": "chroma.operator.dev/v1alpha1",
            "kind": "ChromaCluster",
            "metadata": {"name": "c"},
            "spec": {"shards": 1, "auth": {"secretName": "toks"}, "tls": {"secretName": "cert"}},
        }
    )
    secrets = {"toks": {"tokens.yaml": "T"}, "cert": {"tls.crt": "C", "tls.key": "K"}}
    plan = plan_local(cluster, tmp_path, 9000, secrets=secrets)
    router = plan.router
    assert router.url == "https://127.0.0.1:9000" and plan.topology.router.peers == [router.url]
    assert plan.topology.auth is not None and plan.topology.tls is not None
    files = {str(p): v for p, v in router.secret_files.items()}
    assert files[plan.topology.auth.tokens_file] == "T"
    assert files[plan.topology.tls.cert_file] == "C"
    assert not any(v == "T" for v in router.files.values())
