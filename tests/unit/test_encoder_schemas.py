"""Request validation: the status, message and field of each refusal."""

from __future__ import annotations

import orjson
import pytest

from chroma_operator.encoder.schemas import (
    InputError,
    Limits,
    check_lengths,
    parse_embed,
    parse_openai,
)

LIMITS = Limits(max_client_batch=3, max_input_tokens=10, dimension=8)


def j(obj: object) -> bytes:
    return orjson.dumps(obj)


def test_tei_defaults_and_single_string() -> None:
    req = parse_embed(j({"inputs": "hi"}), LIMITS)
    assert req.texts == ["hi"] and req.normalize is True and req.truncate is False
    req = parse_embed(j({"inputs": ["a", "b"], "normalize": False, "truncate": True}), LIMITS)
    assert req.texts == ["a", "b"] and not req.normalize and req.truncate
    auto = Limits(max_client_batch=3, max_input_tokens=10, dimension=8, auto_truncate=True)
    assert parse_embed(j({"inputs": "x"}), auto).truncate is True
    assert parse_embed(j({"inputs": "x", "truncate": False}), auto).truncate is False


@pytest.mark.parametrize(
    ("body", "status", "error_type", "fragment"),
    [
        (j({"inputs": []}), 400, "Empty", "empty list"),
        (j({"inputs": ""}), 400, "Empty", "empty string"),
        (j({"inputs": ["a", 1]}), 422, "Validation", "inputs[1]"),
        (j({"inputs": None}), 422, "Validation", "required"),
        (j({"inputs": 5}), 422, "Validation", "got int"),
        (j({"inputs": ["a"] * 4}), 413, "Validation", "4 > maximum allowed batch size 3"),
        (b"{", 422, "Validation", "not valid JSON"),
        (b'"str"', 422, "Validation", "JSON object"),
        (j({"inputs": "a", "truncate": 1}), 422, "Validation", "truncate"),
    ],
)
def test_tei_refusals(body: bytes, status: int, error_type: str, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        parse_embed(body, LIMITS)
    assert info.value.status == status
    assert info.value.error_type == error_type
    assert fragment in info.value.message


def test_openai_accepts_and_defaults() -> None:
    req = parse_openai(j({"input": "hi", "model": "m"}), LIMITS)
    assert req.encoding_format == "float" and req.dimensions is None and req.model == "m"
    req = parse_openai(j({"input": ["a"], "encoding_format": "base64", "dimensions": 8}), LIMITS)
    assert req.encoding_format == "base64" and req.dimensions == 8 and req.model is None


@pytest.mark.parametrize(
    ("body", "status", "param", "fragment"),
    [
        (j({"input": "a", "encoding_format": "hex"}), 422, "encoding_format", "'hex'"),
        (j({"input": "a", "dimensions": 0}), 422, "dimensions", "between 1 and 8"),
        (j({"input": "a", "dimensions": 9}), 422, "dimensions", "between 1 and 8"),
        (j({"input": "a", "dimensions": True}), 422, "dimensions", "integer"),
        (j({"input": [[1, 2]]}), 422, "input", "token arrays"),
        (j({"input": [1, 2]}), 422, "input", "token arrays"),
        (j({"input": "a", "model": []}), 422, "model", "string"),
        (j({"input": ["a"] * 4}), 413, "input", "maximum allowed batch size 3"),
    ],
)
def test_openai_refusals(body: bytes, status: int, param: str, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        parse_openai(body, LIMITS)
    assert info.value.status == status
    assert info.value.param == param
    assert fragment in info.value.message


def test_length_check_names_the_limit_unless_truncating() -> None:
    check_lengths([10, 3], False, LIMITS, "inputs", "hint")  # at the limit is fine
    check_lengths([50], True, LIMITS, "inputs", "hint")
    with pytest.raises(InputError) as info:
        check_lengths([3, 11], False, LIMITS, "inputs", "send `truncate: true`")
    assert info.value.status == 413
    assert "inputs[1]" in info.value.message and "11 tokens" in info.value.message
    assert "maximum of 10" in info.value.message and "truncate" in info.value.message
