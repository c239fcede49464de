"""Prometheus metrics of one encoder process.

A registry per app (not the global one) so several apps can live in one process (tests,
benchmarks) without duplicate-metric errors.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class EncoderMetrics:
    """Request, queue, batch and inference metrics; also the batcher's `BatchObserver`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "chroma_encoder_requests",
            "Requests by route and HTTP status",
            ["route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "chroma_encoder_request_duration_seconds",
            "Request latency by route",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.queue_seconds = Histogram(
            "chroma_encoder_queue_duration_seconds",
            "Time a request waited before its first forward pass",
            buckets=_LATENCY,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "chroma_encoder_inference_duration_seconds",
            "Duration of one forward pass (batch)",
            buckets=_LATENCY,
            registry=r,
        )
        self.batch_size = Histogram(
            "chroma_encoder_batch_size",
            "Texts per forward pass",
            buckets=_SIZES,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "chroma_encoder_batch_padded_tokens",
            "Padded tokens (size x longest) per pass",
            buckets=tuple(b * 64 for b in _SIZES),
            registry=r,
        )
        self.texts = Counter("chroma_encoder_texts", "Texts embedded", registry=r)
        self.tokens = Counter("chroma_encoder_tokens", "Input tokens embedded", registry=r)
        self.queue_depth = Gauge(
            "chroma_encoder_queue_depth",
            "Texts waiting for a forward pass",
            registry=r,
        )
        self.inflight = Gauge(
            "chroma_encoder_inflight_texts",
            "Texts accepted and not yet answered (queued or in a forward pass)",
            registry=r,
        )
        self.ready = Gauge(
            "chroma_encoder_ready",
            "1 once the model is loaded and until SIGTERM (what /ready answers)",
            registry=r,
        )
        self.info = Gauge(
            "chroma_encoder_info",
            "The served model (value is always 1)",
            ["model", "device", "dtype", "dimension"],
            registry=r,
        )

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        """Read the depth from the batcher at scrape time (always current, no bookkeeping)."""
        self.queue_depth.set_function(depth)

    def track_inflight(self, count: Callable[[], float]) -> None:
        self.inflight.set_function(count)

    def track_ready(self, ready: Callable[[], bool]) -> None:
        self.ready.set_function(lambda: 1.0 if ready() else 0.0)

    def batch_done(self, size: int, padded_tokens: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_tokens.observe(padded_tokens)
        self.inference_seconds.observe(seconds)
