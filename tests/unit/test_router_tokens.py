"""The tokens file, token matching and the role/tenant/database check (pure parts)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from chroma_operator.router.app import build_routes
from chroma_operator.router.auth import AuthGate, TokenSource
from chroma_operator.router.core import RouterCore
from chroma_operator.router.permissions import (
    ADMIN_TENANT,
    CLUSTER_ADMIN,
    INTERNAL,
    READ_DB,
    ROUTE_NEEDS,
    WRITE_DB,
    need_for,
    refusal,
)
from chroma_operator.router.tokens import (
    INTERNAL as INTERNAL_ID,
)
from chroma_operator.router.tokens import (
    Identity,
    TokensFileError,
    TokenTable,
    internal_key,
    parse_tokens,
    presented_token,
)
from chroma_operator.router.topology_source import TopologySource
from chroma_operator.topology import AuthTopology, ShardTopology, Topology

ENTRIES = [
    {"name": "ops", "token": "adm1n", "tenant": "*", "role": "admin"},
    {
        "name": "app",
        "sha256": hashlib.sha256(b"app-t0k").hexdigest(),
        "tenant": "acme",
        "role": "write",
    },
    {"name": "dash", "token": "d4sh", "tenant": "acme", "databases": ["main"], "role": "read"},
]


def table() -> TokenTable:
    return TokenTable(parse_tokens(yaml.safe_dump({"tokens": ENTRIES}).encode()))


def test_match_by_token_or_digest() -> None:
    t = table()
    assert t.match(b"adm1n") == Identity("ops", "*", ("*",), "admin")
    assert t.match(b"app-t0k") == Identity("app", "acme", ("*",), "write")
    assert t.match(b"d4sh") == Identity("dash", "acme", ("main",), "read")
    assert t.match(b"app-t0") is None and t.match(b"") is None


def test_bare_list_is_accepted() -> None:
    assert len(TokenTable(parse_tokens(yaml.safe_dump(ENTRIES).encode()))) == 3


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ("tokens: [", "not valid YAML"),
        ("42", "a mapping"),
        ({"tokens": []}, "tokens"),
        ({"tokens": [{"name": "a", "tenant": "t", "role": "read"}]}, "exactly one of"),
        (
            {"tokens": [{"name": "a", "token": "x y", "tenant": "t", "role": "read"}]},
            "ASCII letters",
        ),
        ({"tokens": [{"name": "a", "token": "sekrit", "tenant": "t", "role": "root"}]}, "role"),
        ({"tokens": [ENTRIES[0], {**ENTRIES[2], "name": "ops"}]}, "duplicate token names: ops"),
        ({"tokens": [ENTRIES[2], {**ENTRIES[2], "name": "x"}]}, "same token"),
    ],
)
def test_bad_files_name_the_problem_not_the_token(doc: object, problem: str) -> None:
    raw = doc if isinstance(doc, str) else yaml.safe_dump(doc)
    with pytest.raises(TokensFileError) as err:
        parse_tokens(raw.encode())
    assert problem in str(err.value)
    for secret in ("sekrit", "d4sh", "adm1n", "x y"):
        assert secret not in str(err.value)


@pytest.mark.parametrize(
    ("authorization", "x_token", "expected"),
    [
        (["Bearer abc"], [], b"abc"),
        (["bearer  abc "], [], b"abc"),
        ([], ["abc"], b"abc"),
        (["Bearer abc"], ["abc"], b"abc"),  # both headers, same token
        (["Bearer abc"], ["abd"], None),  # two different tokens: refused
        ([], ["abc", "abd"], None),
        (["Basic abc"], [], None),
        (["Bearer"], [], None),
        ([], ["a" * 5000], None),
        ([], [], None),
    ],
)
def test_presented_token(
    authorization: list[str], x_token: list[str], expected: bytes | None
) -> None:
    assert presented_token(authorization, x_token) == expected


def who(tenant: str, role: str, dbs: tuple[str, ...] = ("*",)) -> Identity:
    return Identity("t", tenant, dbs, role)  # type: ignore[arg-type]


def test_refusal_roles_tenants_databases() -> None:
    assert refusal(who("acme", "read"), READ_DB, "acme", "main") is None
    assert refusal(who("acme", "read"), WRITE_DB, "acme", "main") is not None
    assert refusal(who("acme", "admin"), WRITE_DB, "acme", "main") is None
    assert refusal(who("acme", "admin"), WRITE_DB, "globex", "main") is not None
    assert refusal(who("*", "write"), WRITE_DB, "globex", "main") is None
    assert refusal(who("acme", "read", ("main",)), READ_DB, "acme", "other") is not None
    assert refusal(who("acme", "admin", ("main",)), ADMIN_TENANT, "acme", None) is not None
    assert refusal(who("acme", "admin"), ADMIN_TENANT, "acme", None) is None
    assert refusal(who("acme", "admin"), CLUSTER_ADMIN, None, None) is not None
    assert refusal(who("*", "admin"), CLUSTER_ADMIN, None, None) is None
    assert refusal(who("*", "admin"), INTERNAL, None, None) is None
    # The peers' key opens the internal routes only.
    assert refusal(INTERNAL_ID, INTERNAL, None, None) is None
    assert refusal(INTERNAL_ID, READ_DB, "acme", "main") is not None


def test_every_route_declares_its_need() -> None:
    """A route added without a decision here fails: it would need a cluster admin."""
    core = RouterCore(
        TopologySource(
            Topology(
                cluster="c",
                namespace="n",
                shards=[ShardTopology(index=0, endpoints=["http://s:1"])],
            )
        )
    )
    for route in build_routes(core):
        for method in route.methods or ():
            if method == "HEAD":
                continue
            declared = (method, route.path) in ROUTE_NEEDS
            special = route.path.startswith("/internal/") or route.path.endswith("{rest:path}")
            assert declared or special, f"{method} {route.path} has no declared need"
    assert need_for("POST", "/internal/invalidate") == INTERNAL
    assert need_for("GET", "/something/new") == CLUSTER_ADMIN


def test_source_reloads_and_derives_peer_keys(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    first = yaml.safe_dump({"tokens": ENTRIES}).encode()
    path.write_bytes(first)
    source = TokenSource(path)
    assert source.table is not None and source.table.match(b"d4sh") is not None
    assert source.peer_key == internal_key(first)
    assert not source.load()
    second = yaml.safe_dump({"tokens": ENTRIES[:1]}).encode()
    path.write_bytes(second)
    assert source.load()
    assert source.table.match(b"d4sh") is None
    # The previous file's peer key still works (rotation reaches routers one by one).
    assert source.table.match(internal_key(first).encode()) is INTERNAL_ID
    assert source.table.match(internal_key(second).encode()) is INTERNAL_ID


def test_gate_keeps_last_good_and_follows_topology(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump({"tokens": ENTRIES}))
    gate = AuthGate(AuthTopology(tokens_file=str(path)))
    path.write_text("tokens: [{name: x}]")
    assert gate.refresh(gate.config) == "error"
    assert gate.source is not None and gate.source.table is not None
    assert gate.source.table.match(b"adm1n") is not None
    assert gate.refresh(None) == "ok" and not gate.enabled
    with pytest.raises(OSError):
        AuthGate(AuthTopology(tokens_file=str(tmp_path / "missing.yaml")))
