"""The encoder's HTTP API (Starlette): TEI's `/embed`, OpenAI's `/v1/embeddings`, health,
readiness, info and metrics.

Handlers only validate, count tokens, queue and format: the forward pass happens in the
batcher's worker thread, so the event loop keeps accepting requests while a batch runs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chroma_operator.api.encoder_spec import Encoder
from chroma_operator.encoder.batcher import (
    BackendError,
    Batcher,
    BatcherClosed,
    BatcherConfig,
    FloatArray,
    QueueFull,
)
from chroma_operator.encoder.lifecycle import Lifecycle
from chroma_operator.encoder.metrics import EncoderMetrics
from chroma_operator.encoder.schemas import (
    InputError,
    Limits,
    check_lengths,
    parse_embed,
    parse_openai,
)

log = logging.getLogger(__name__)

#: Requests with more texts than this are tokenized off the event loop.
_INLINE_TOKENIZE = 16


class TokenCounter(Protocol):
    def count(self, texts: Sequence[str]) -> list[int]: ...


class InfoLike(Protocol):
    @property
    def model_id(self) -> str: ...
    @property
    def model_path(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    @property
    def max_input_tokens(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def dtype(self) -> str: ...


class EncoderLike(Protocol):
    """What the app needs from a model replica (`model.Encoder` is the real one)."""

    @property
    def info(self) -> InfoLike: ...
    @property
    def tokenizer(self) -> TokenCounter: ...
    def encode(self, texts: Sequence[str]) -> FloatArray: ...


_SPEC = Encoder()


@dataclass(frozen=True)
class ServerSettings:
    """Batching and limits; the CLI flags map one to one. Defaults are the ChromaCluster
    spec's (spec.encoder), so every way of starting the encoder behaves the same."""

    max_batch_size: int = 32
    max_batch_tokens: int = 0
    max_batch_delay_ms: float = float(_SPEC.batching.max_batch_delay_ms)
    max_client_batch: int = _SPEC.batching.max_client_batch
    max_queue: int = _SPEC.batching.max_queue
    auto_truncate: bool = _SPEC.truncate
    served_model_name: str | None = None
    shutdown_timeout: float = 30.0
    """At shutdown, how long accepted texts may take to be answered before they fail."""


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _tei_error(err: InputError) -> Response:
    return _json({"error": err.message, "error_type": err.error_type}, err.status)


def _openai_error(err: InputError) -> Response:
    if err.status == 429:
        kind = "rate_limit_error"
    elif err.status >= 500:
        kind = "server_error"
    else:
        kind = "invalid_request_error"
    return _json(
        {"error": {"message": err.message, "type": kind, "param": err.param, "code": err.code}},
        err.status,
    )


def _normalize(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: FloatArray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return out


@dataclass(frozen=True)
class _Embedded:
    vectors: FloatArray
    tokens: int
    headers: dict[str, str]


def create_app(
    encoders: Sequence[EncoderLike],
    settings: ServerSettings,
    lifecycle: Lifecycle | None = None,
) -> Starlette:
    """Build the ASGI app around loaded model replicas (one batcher worker each).

    `lifecycle` is shared with the process (draining on SIGTERM); without one the app is
    ready as soon as it runs.
    """
    if not encoders:
        raise ValueError("at least one encoder is needed")
    info = encoders[0].info
    if settings.max_client_batch > settings.max_queue:
        raise ValueError(
            f"max_client_batch ({settings.max_client_batch}) must not exceed max_queue "
            f"({settings.max_queue}): a full-size request could never be queued"
        )
    limits = Limits(
        max_client_batch=settings.max_client_batch,
        max_input_tokens=info.max_input_tokens,
        dimension=info.dimension,
        auto_truncate=settings.auto_truncate,
    )
    model_name = settings.served_model_name or info.model_id
    metrics = EncoderMetrics()
    batcher = Batcher(
        [e.encode for e in encoders],
        BatcherConfig(
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_batch_delay=settings.max_batch_delay_ms / 1000.0,
            max_queue=settings.max_queue,
            max_input_tokens=info.max_input_tokens,
        ),
        observer=metrics,
    )
    metrics.track_queue_depth(lambda: batcher.depth)
    state = lifecycle or Lifecycle(loaded=True)
    inflight = [0]  # texts accepted and not yet answered (queued or in a forward pass)
    metrics.track_inflight(lambda: inflight[0])
    metrics.track_ready(lambda: state.ready and batcher.alive)
    metrics.info.labels(model_name, info.device, info.dtype, str(info.dimension)).set(1)
    tokenizer = encoders[0].tokenizer
    # One thread owns the counting tokenizer for large requests (it is not shared).
    tok_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenizer")

    async def embed(texts: list[str], truncate: bool, field: str, hint: str) -> _Embedded:
        t0 = time.perf_counter()
        if len(texts) <= _INLINE_TOKENIZE:
            lengths = tokenizer.count(texts)
        else:
            loop = asyncio.get_running_loop()
            lengths = await loop.run_in_executor(tok_pool, tokenizer.count, texts)
        check_lengths(lengths, truncate, limits, field, hint)
        t1 = time.perf_counter()
        inflight[0] += len(texts)
        try:
            result = await batcher.submit(texts, lengths)
        except QueueFull as exc:
            raise InputError(429, str(exc), error_type="Overloaded", code="queue_full") from exc
        except BatcherClosed as exc:
            raise InputError(503, str(exc), error_type="Unhealthy") from exc
        except BackendError as exc:
            raise InputError(500, f"the forward pass failed: {exc}", error_type="Backend") from exc
        finally:
            inflight[0] -= len(texts)
        metrics.queue_seconds.observe(result.queue_seconds)
        tokens = sum(min(n, limits.max_input_tokens) for n in lengths)
        metrics.texts.inc(len(texts))
        metrics.tokens.inc(tokens)
        headers = {
            "x-tokenization-time": f"{(t1 - t0) * 1000:.3f}",
            "x-queue-time": f"{result.queue_seconds * 1000:.3f}",
            "x-inference-time": f"{result.inference_seconds * 1000:.3f}",
            "x-compute-tokens": str(tokens),
        }
        return _Embedded(result.vectors, tokens, headers)

    def instrumented(
        route: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            t0 = time.perf_counter()
            response = await handler(request)
            elapsed = time.perf_counter() - t0
            if "x-queue-time" in response.headers:
                response.headers["x-total-time"] = f"{elapsed * 1000:.3f}"
            metrics.requests.labels(route, str(response.status_code)).inc()
            metrics.request_seconds.labels(route).observe(elapsed)
            return response

        return wrapped

    async def tei_embed(request: Request) -> Response:
        try:
            req = parse_embed(await request.body(), limits)
            out = await embed(
                req.texts, req.truncate, "inputs", "shorten it or send `truncate: true`"
            )
        except InputError as err:
            return _tei_error(err)
        vectors = _normalize(out.vectors) if req.normalize else out.vectors
        return _json(vectors, headers=out.headers)

    async def openai_embeddings(request: Request) -> Response:
        try:
            req = parse_openai(await request.body(), limits)
            out = await embed(
                req.texts,
                settings.auto_truncate,
                "input",
                "shorten it (this encoder does not truncate)",
            )
        except InputError as err:
            return _openai_error(err)
        vectors = out.vectors
        if req.dimensions is not None:
            vectors = vectors[:, : req.dimensions]  # Matryoshka-style: cut, then renormalise
        vectors = _normalize(vectors)
        data: list[dict[str, Any]]
        if req.encoding_format == "base64":
            little = vectors.astype("<f4", copy=False)
            data = [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": base64.b64encode(little[i].tobytes()).decode("ascii"),
                }
                for i in range(len(little))
            ]
        else:
            data = [
                {"object": "embedding", "index": i, "embedding": vectors[i]}
                for i in range(len(vectors))
            ]
        body = {
            "object": "list",
            "data": data,
            "model": model_name,
            "usage": {"prompt_tokens": out.tokens, "total_tokens": out.tokens},
        }
        return _json(body, headers=out.headers)

    async def health(request: Request) -> Response:
        if batcher.alive:
            return _json({"status": "ok"})
        return _json(
            {"error": "the batching worker is not running", "error_type": "Unhealthy"}, 503
        )

    async def ready(request: Request) -> Response:
        """Readiness: the model is loaded, the workers run and no SIGTERM has come."""
        if state.ready and batcher.alive:
            return _json({"status": "ready"})
        reason = "draining before shutdown" if state.draining else "not serving"
        return _json({"error": reason, "error_type": "Unhealthy"}, 503)

    async def get_info(request: Request) -> Response:
        return _json(
            {
                "model_id": model_name,
                "model_path": info.model_path,
                "dimension": info.dimension,
                "max_input_tokens": info.max_input_tokens,
                "max_input_length": info.max_input_tokens,  # TEI's name
                "max_client_batch": settings.max_client_batch,
                "max_client_batch_size": settings.max_client_batch,  # TEI's name
                "max_batch_size": settings.max_batch_size,
                "max_batch_tokens": settings.max_batch_tokens,
                "max_batch_delay_ms": settings.max_batch_delay_ms,
                "max_queue": settings.max_queue,
                "auto_truncate": settings.auto_truncate,
                "device": info.device,
                "devices": [e.info.device for e in encoders],
                "dtype": info.dtype,
                "model_dtype": info.dtype,  # TEI's name
            }
        )

    async def get_metrics(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def models(request: Request) -> Response:
        return _json(
            {
                "object": "list",
                "data": [
                    {
                        "id": model_name,
                        "object": "model",
                        "created": 0,
                        "owned_by": "chroma-operator",
                    }
                ],
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            # The server has stopped accepting; answer what was accepted before stopping.
            deadline = time.monotonic() + settings.shutdown_timeout
            while inflight[0] > 0 and batcher.alive and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if inflight[0]:
                log.warning("shutting down with %d texts unanswered", inflight[0])
            await batcher.stop()
            tok_pool.shutdown(wait=False)

    routes = [
        Route("/embed", instrumented("/embed", tei_embed), methods=["POST"]),
        Route(
            "/v1/embeddings", instrumented("/v1/embeddings", openai_embeddings), methods=["POST"]
        ),
        Route("/embeddings", instrumented("/embeddings", openai_embeddings), methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/info", get_info, methods=["GET"]),
        Route("/metrics", get_metrics, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.batcher = batcher
    app.state.metrics = metrics
    return app
