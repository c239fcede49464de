"""The embedding server's spec group (spec.encoder): batching and autoscaling."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chroma_operator.api.base import LABEL_KEY_PATTERN, Model, Resources, resources_of

DEFAULT_ENCODER_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class Batching(Model):
    max_batch_size: int = Field(default=64, ge=1, le=4096, description="Texts in one forward pass")
    max_batch_delay_ms: int = Field(
        default=5, ge=0, le=10_000, description="Longest wait for a batch to fill"
    )
    max_client_batch: int = Field(
        default=8192,
        ge=1,
        le=100_000,
        description="Most texts accepted in one request (split internally)",
    )
    max_queue: int = Field(
        default=16_384, ge=1, le=1_000_000, description="Texts waiting before requests get 429"
    )


class Autoscaling(Model):
    """Scale the encoder on its queue depth (texts waiting per pod), not on CPU."""

    enabled: bool = Field(
        default=False,
        description="Create an autoscaler; the encoder's replicas are then left to it",
    )
    provider: Literal["hpa", "keda"] = Field(
        default="hpa",
        description="hpa: an autoscaling/v2 HorizontalPodAutoscaler on a Pods metric served "
        "by prometheus-adapter; keda: a KEDA ScaledObject with a Prometheus trigger "
        "(created only when KEDA's CRD is installed)",
    )
    min_replicas: int = Field(default=1, ge=1, le=100, description="Fewest encoder pods")
    max_replicas: int = Field(default=4, ge=1, le=100, description="Most encoder pods")
    target_queue_per_replica: int = Field(
        default=256,
        ge=1,
        le=1_000_000,
        description="Texts waiting per pod (chroma_encoder_queue_depth) the autoscaler aims at",
    )
    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        pattern=r"^https?://",
        description="Prometheus that KEDA queries (provider keda)",
    )


class Encoder(Model):
    """The embedding server: TEI- and OpenAI-compatible, batching on a GPU or the CPU."""

    enabled: bool = Field(
        default=False,
        description="Run an encoder; collections created without an embedding function then "
        "embed documents and query texts on it",
    )
    model: str = Field(
        default=DEFAULT_ENCODER_MODEL, min_length=1, description="Model id or path in the image"
    )
    image: str | None = Field(
        default=None, description="Encoder image; the project's encoder image when unset"
    )
    replicas: int = Field(default=1, ge=0, le=100, description="Encoder pods")
    port: int = Field(default=8080, ge=1024, le=65535, description="Port the encoder listens on")
    gpu: int = Field(default=0, ge=0, le=16, description="GPUs per encoder pod; 0 runs on the CPU")
    gpu_resource_name: str = Field(
        default="nvidia.com/gpu",
        pattern=LABEL_KEY_PATTERN,
        description="Extended resource name of a GPU",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels the encoder pods require (e.g. a GPU node pool)",
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto",
        description="Inference precision; auto is float16 on a GPU, float32 on the CPU",
    )
    truncate: bool = Field(
        default=True, description="Truncate over-long inputs by default instead of refusing them"
    )
    batching: Batching = Field(default_factory=Batching, description="Dynamic batching")
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling, description="Queue-depth autoscaling (HPA or KEDA)"
    )
    resources: Resources = Field(
        default_factory=lambda: resources_of("1", "2Gi", "4Gi"),
        description="Resources of the encoder container (GPUs come from `gpu`)",
    )
