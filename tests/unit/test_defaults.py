"""One source for every default: the encoder started by hand behaves as the one in a pod."""

from __future__ import annotations

import inspect

from chroma_operator.api.models import Encoder
from chroma_operator.encoder import cli as encoder_cli


def test_encoder_cli_defaults_are_the_spec_defaults() -> None:
    spec = Encoder()
    options = {
        name: p.default.default
        for name, p in inspect.signature(encoder_cli.command).parameters.items()
    }
    assert options["max_queue"] == spec.batching.max_queue == 16_384
    assert options["auto_truncate"] is spec.truncate is True
    assert options["max_client_batch"] == spec.batching.max_client_batch
    assert options["max_batch_delay_ms"] == spec.batching.max_batch_delay_ms
    assert options["port"] == spec.port


def test_encoder_server_and_batcher_defaults_are_the_spec_defaults() -> None:
    """The app's settings and the batcher's config, used directly (tests, benchmarks,
    embedding in another server), default to what a ChromaCluster pod runs with."""
    from chroma_operator.encoder.app import ServerSettings
    from chroma_operator.encoder.batcher import BatcherConfig

    spec = Encoder()
    settings, batcher = ServerSettings(), BatcherConfig()
    assert settings.max_queue == batcher.max_queue == spec.batching.max_queue
    assert settings.auto_truncate is spec.truncate
    assert settings.max_client_batch == spec.batching.max_client_batch
    assert settings.max_batch_delay_ms == spec.batching.max_batch_delay_ms
    assert batcher.max_batch_delay == spec.batching.max_batch_delay_ms / 1000.0
