"""The tokens file and matching a presented token against it. Pure: no I/O.

A Secret's `tokens.yaml` lists who may do what:

    tokens:
      - name: acme-app
        token: "s3cret"               # or sha256: <hex digest of the token>
        tenant: acme                  # "*": every tenant
        databases: ["*"]              # or a list of database names
        role: write                   # read | write | admin

A presented token is hashed once (sha256) and compared with every entry's digest in
constant time (`hmac.compare_digest`), so neither the token nor which entry it is
close to leaks through timing. Error messages name entries, never token values.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

Role = Literal["read", "write", "admin"]
ROLE_RANK: dict[str, int] = {"read": 0, "write": 1, "admin": 2}
ANY = "*"
MAX_TOKEN_BYTES = 4096
# What the stock client's token provider accepts: ASCII letters, digits, punctuation.
TOKEN_CHARS = frozenset(string.digits + string.ascii_letters + string.punctuation)
INTERNAL_CONTEXT = b"chroma-operator router internal v1"


class TokensFileError(ValueError):
    """The tokens file is unusable; the message never contains a token."""


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=253, description="Who holds the token (logs)")
    token: SecretStr | None = Field(default=None, description="The token itself")
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$", description="Hex sha256 of the token"
    )
    tenant: str = Field(min_length=1, description="The tenant it may use; * for all")
    databases: list[str] = Field(
        default_factory=lambda: [ANY], min_length=1, description="Databases; * for all"
    )
    role: Role

    @model_validator(mode="after")
    def _one_secret(self) -> TokenEntry:
        if (self.token is None) == (self.sha256 is None):
            raise ValueError("give exactly one of token or sha256")
        if self.token is not None:
            value = self.token.get_secret_value()
            if not value or len(value) > MAX_TOKEN_BYTES:
                raise ValueError(f"token must be 1 to {MAX_TOKEN_BYTES} characters")
            if not set(value) <= TOKEN_CHARS:
                raise ValueError("token may hold only ASCII letters, digits and punctuation")
        return self

    def digest(self) -> bytes:
        if self.token is not None:
            return hashlib.sha256(self.token.get_secret_value().encode()).digest()
        assert self.sha256 is not None
        return bytes.fromhex(self.sha256)


class TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: list[TokenEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> TokensFile:
        names = [t.name for t in self.tokens]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate token names: {', '.join(dup)}")
        digests = [t.digest() for t in self.tokens]
        if len(set(digests)) != len(digests):
            same = [
                t.name for t, d in zip(self.tokens, digests, strict=True) if digests.count(d) > 1
            ]
            raise ValueError(f"entries {', '.join(same)} hold the same token")
        return self


def _problems(exc: ValidationError) -> str:
    """Where and what, never the input (which may be a token)."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(file)"
        lines.append(f"{loc}: {err['msg']}")
    return "; ".join(lines)


def parse_tokens(raw: bytes) -> TokensFile:
    """The tokens file from YAML: a mapping with `tokens:` or a bare list of entries."""
    try:
        doc: Any = yaml.safe_load(raw)
    except yaml.YAMLError:
        # The parser's message quotes the offending line, which may hold a token.
        raise TokensFileError("tokens file is not valid YAML") from None
    if isinstance(doc, list):
        doc = {"tokens": doc}
    if not isinstance(doc, dict):
        raise TokensFileError("tokens file must be a mapping with `tokens:` or a list")
    try:
        return TokensFile.model_validate(doc)
    except ValidationError as exc:
        raise TokensFileError(_problems(exc)) from None


@dataclass(frozen=True)
class Identity:
    """Who a request is: a tokens-file entry, or a peer router with the internal key."""

    name: str
    tenant: str
    databases: tuple[str, ...]
    role: Role
    internal: bool = False

    def as_user_identity(self) -> dict[str, Any]:
        """Chroma's `UserIdentity` body for GET /api/v2/auth/identity."""
        return {"user_id": self.name, "tenant": self.tenant, "databases": list(self.databases)}


INTERNAL = Identity("router-peer", ANY, (ANY,), "admin", internal=True)


def internal_key(raw: bytes) -> str:
    """A key every router derives from the same tokens file: peers authenticate with it."""
    return hmac.new(raw, INTERNAL_CONTEXT, hashlib.sha256).hexdigest()


class TokenTable:
    """Digests of a tokens file, ready for constant-time matching."""

    def __init__(self, tokens: TokensFile, internal_keys: tuple[str, ...] = ()) -> None:
        self._entries = [
            (
                t.digest(),
                Identity(t.name, t.tenant, tuple(t.databases), t.role),
            )
            for t in tokens.tokens
        ]
        self._internal = [hashlib.sha256(k.encode()).digest() for k in internal_keys]

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, token: bytes) -> Identity | None:
        """The identity whose token this is; every digest is compared, found or not."""
        digest = hashlib.sha256(token).digest()
        found: Identity | None = None
        for known, identity in self._entries:
            if hmac.compare_digest(digest, known):
                found = identity
        for known in self._internal:
            if hmac.compare_digest(digest, known):
                found = INTERNAL
        return found


def presented_token(authorization: list[str], x_chroma_token: list[str]) -> bytes | None:
    """The one token a request carries, or None (absent, malformed or ambiguous).

    `Authorization: Bearer T` (what the stock client sends by default) and
    `X-Chroma-Token: T` are both accepted; several different tokens are refused
    rather than guessed between.
    """
    found: set[str] = set()
    for value in authorization:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "bearer":
            continue
        found.add(rest.strip())
    found.update(v.strip() for v in x_chroma_token)
    if len(found) != 1:
        return None
    token = found.pop()
    # Starlette decodes header bytes as latin-1: this gives back the bytes as sent.
    raw = token.encode("latin-1", errors="replace")
    if not raw or len(raw) > MAX_TOKEN_BYTES:
        return None
    return raw
