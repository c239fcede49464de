"""Token auth at the router: the tokens file as mounted, reloaded on change, and the
check every route runs before its handler (called from the route wrapper in core.py).

Missing or unknown token: 401; a token outside its tenant, database or role: 403.
Both answer in Chroma's error shape with type `AuthError`, which the stock client
raises as `ChromaAuthError`. With no `auth` in the topology everything is open, as
before. Tokens never reach logs, metrics or error messages; entries are named.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from starlette.requests import Request

from chroma_operator.router.errors import ChromaHTTPError
from chroma_operator.router.permissions import Need, refusal
from chroma_operator.router.tokens import (
    Identity,
    TokensFileError,
    TokenTable,
    internal_key,
    parse_tokens,
    presented_token,
)
from chroma_operator.topology import AuthTopology

log = logging.getLogger("chroma_operator.router.auth")

IDENTITY_KEY = "chroma_identity"  # request.state attribute holding the caller's Identity
INTERNAL_HEADER = "X-Chroma-Token"


def unauthenticated(message: str = "Missing or unknown token") -> ChromaHTTPError:
    return ChromaHTTPError(401, "AuthError", message, {"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> ChromaHTTPError:
    return ChromaHTTPError(403, "AuthError", message)


class TokenSource:
    """One tokens file: the table from its last good content, re-read when it changes.

    Peers derive the internal key from the file's bytes; the previous file's key is
    still accepted, so a rotation reaching routers at different moments does not
    break cache invalidation between them.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._digest = b""
        self._keys: tuple[str, ...] = ()
        self.table: TokenTable | None = None
        self.load()  # raises on a missing or broken file: refuse to start open

    @property
    def peer_key(self) -> str | None:
        return self._keys[0] if self._keys else None

    def load(self) -> bool:
        """Re-read the file; True when it changed. Raises TokensFileError / OSError."""
        raw = self.path.read_bytes()
        digest = hashlib.sha256(raw).digest()
        if digest == self._digest:
            return False
        tokens = parse_tokens(raw)
        self._keys = (internal_key(raw), *self._keys[:1])
        self.table = TokenTable(tokens, self._keys)
        self._digest = digest
        return True


class AuthGate:
    """The router's auth state: off, or a token source for the topology's tokens file."""

    def __init__(self, config: AuthTopology | None) -> None:
        self.config = config
        self.source = TokenSource(config.tokens_file) if config is not None else None

    @property
    def enabled(self) -> bool:
        return self.source is not None

    def refresh(self, config: AuthTopology | None) -> str | None:
        """Follow a topology change and a changed file; 'ok'/'error' when it reloaded.

        A broken or missing file keeps the last good tokens (never falls open)."""
        try:
            if config != self.config:
                self.source = TokenSource(config.tokens_file) if config is not None else None
                self.config = config
                log.info("auth %s", "configured" if config else "turned off")
                return "ok"
            if self.source is not None and self.source.load():
                log.info("tokens reloaded: %d entries", len(self.source.table or ()))
                return "ok"
        except (OSError, TokensFileError) as exc:
            log.warning("tokens file not reloaded, keeping the last good one: %s", exc)
            return "error"
        return None

    def peer_headers(self) -> dict[str, str]:
        key = self.source.peer_key if self.source is not None else None
        return {INTERNAL_HEADER: key} if key else {}

    def identify(self, request: Request) -> Identity:
        """The caller's identity, or 401."""
        assert self.source is not None and self.source.table is not None
        headers = request.headers
        token = presented_token(headers.getlist("authorization"), headers.getlist("x-chroma-token"))
        identity = self.source.table.match(token) if token is not None else None
        if identity is None:
            raise unauthenticated()
        return identity

    def check(self, request: Request, need: Need) -> None:
        """Raise 401/403 unless the request may do what `need` says; remember who it is."""
        if need.open or self.source is None:
            return
        identity = self.identify(request)
        params = request.path_params
        why = refusal(identity, need, params.get("tenant"), params.get("database"))
        if why is not None:
            raise forbidden(why)
        setattr(request.state, IDENTITY_KEY, identity)


def identity_of(request: Request) -> Identity | None:
    """The identity the gate found for this request (None with auth off)."""
    found = getattr(request.state, IDENTITY_KEY, None)
    return found if isinstance(found, Identity) else None
