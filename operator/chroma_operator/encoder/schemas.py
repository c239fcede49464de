"""Request parsing and validation for the TEI and OpenAI routes.

Hand-written rather than a pydantic model: each refusal must carry the status code and
the message that TEI or OpenAI would give (413 with the limit for too many or too long
inputs, 422 for an unknown encoding), and a generic validation dump would not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

EncodingFormat = Literal["float", "base64"]


class InputError(Exception):
    """A refused request: HTTP status, message, TEI `error_type`, OpenAI `param`."""

    def __init__(
        self,
        status: int,
        message: str,
        error_type: str = "Validation",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code


@dataclass(frozen=True)
class Limits:
    """What the server accepts."""

    max_client_batch: int
    max_input_tokens: int
    dimension: int
    auto_truncate: bool = False


@dataclass(frozen=True)
class EmbedRequest:
    """A validated TEI `/embed` request."""

    texts: list[str]
    normalize: bool
    truncate: bool


@dataclass(frozen=True)
class OpenAIRequest:
    """A validated OpenAI embeddings request."""

    texts: list[str]
    model: str | None
    encoding_format: EncodingFormat
    dimensions: int | None


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 422 saying what is wrong with it."""
    if not body:
        raise InputError(422, "request body is empty; send a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError(422, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(422, f"request body must be a JSON object, got {type(data).__name__}")
    return data


def _texts(value: Any, field: str, limits: Limits) -> list[str]:
    if value is None:
        raise InputError(422, f"`{field}` is required", param=field)
    items: list[Any]
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise InputError(
            422,
            f"`{field}` must be a string or a list of strings, got {type(value).__name__}",
            param=field,
        )
    if not items:
        raise InputError(400, f"`{field}` cannot be an empty list", error_type="Empty", param=field)
    if len(items) > limits.max_client_batch:
        raise InputError(
            413,
            f"batch size {len(items)} > maximum allowed batch size {limits.max_client_batch}",
            param=field,
        )
    for i, item in enumerate(items):
        if not isinstance(item, str):
            what = (
                "token arrays are not supported, send text"
                if isinstance(item, (int, list))
                else f"got {type(item).__name__}"
            )
            raise InputError(422, f"`{field}[{i}]` must be a string: {what}", param=field)
        if not item:
            raise InputError(
                400, f"`{field}[{i}]` cannot be an empty string", error_type="Empty", param=field
            )
    return items


def _bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InputError(422, f"`{key}` must be true or false", param=key)
    return value


def parse_embed(body: bytes, limits: Limits) -> EmbedRequest:
    """TEI: `{"inputs": str | [str], "normalize": true, "truncate": false}`."""
    data = parse_json(body)
    texts = _texts(data.get("inputs"), "inputs", limits)
    return EmbedRequest(
        texts=texts,
        normalize=_bool(data, "normalize", True),
        truncate=_bool(data, "truncate", limits.auto_truncate),
    )


def parse_openai(body: bytes, limits: Limits) -> OpenAIRequest:
    """OpenAI: `{"input", "model", "encoding_format": "float"|"base64", "dimensions"?}`."""
    data = parse_json(body)
    texts = _texts(data.get("input"), "input", limits)
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise InputError(422, "`model` must be a string", param="model")
    raw_fmt = data.get("encoding_format")
    fmt: EncodingFormat
    if raw_fmt is None or raw_fmt == "float":
        fmt = "float"
    elif raw_fmt == "base64":
        fmt = "base64"
    else:
        raise InputError(
            422,
            f"unknown `encoding_format` {raw_fmt!r}; use 'float' or 'base64'",
            param="encoding_format",
        )
    dims = data.get("dimensions")
    if dims is not None:
        if isinstance(dims, bool) or not isinstance(dims, int):
            raise InputError(422, "`dimensions` must be an integer", param="dimensions")
        if not 1 <= dims <= limits.dimension:
            raise InputError(
                422,
                f"`dimensions` must be between 1 and {limits.dimension}, got {dims}",
                param="dimensions",
            )
    return OpenAIRequest(texts=texts, model=model, encoding_format=fmt, dimensions=dims)


def check_lengths(
    lengths: list[int], truncate: bool, limits: Limits, field: str, hint: str
) -> None:
    """Refuse (413, naming the limit) an input longer than the model takes, unless truncating."""
    if truncate:
        return
    for i, n in enumerate(lengths):
        if n > limits.max_input_tokens:
            raise InputError(
                413,
                f"`{field}[{i}]` has {n} tokens, more than the model's maximum of "
                f"{limits.max_input_tokens}; {hint}",
                param=field,
                code="context_length_exceeded",
            )
