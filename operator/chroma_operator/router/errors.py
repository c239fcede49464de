"""Errors in Chroma's own shape, so the stock client raises its own exception classes.

Chroma answers `{"error": "<ChromaErrorType>", "message": "..."}`; the client maps the
type name to an exception class (`NotFoundError`, `InvalidArgumentError`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response


class ChromaHTTPError(Exception):
    """An error answered to the client as-is, in Chroma's shape."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return error_response(self.status, self.error, self.message, self.headers)


def error_response(
    status: int, error: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps({"error": error, "message": message}),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def invalid_argument(message: str) -> ChromaHTTPError:
    return ChromaHTTPError(400, "InvalidArgumentError", message)


def deserialize_error(message: str) -> ChromaHTTPError:
    """What Chroma's server answers when the body does not fit the request type (422)."""
    return ChromaHTTPError(
        422, "ChromaError", f"Failed to deserialize the JSON body into the target type: {message}"
    )


def collection_not_found(collection: str) -> ChromaHTTPError:
    return ChromaHTTPError(404, "NotFoundError", f"Collection [{collection}] does not exist.")


def shard_unavailable(shard: int, endpoint: str, reason: str) -> ChromaHTTPError:
    """A shard that could not answer: 503 naming the shard, so operators know where to look."""
    return ChromaHTTPError(503, "ChromaError", f"Shard {shard} unavailable ({endpoint}): {reason}")
