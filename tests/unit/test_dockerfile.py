"""The Dockerfile, parsed: pinned bases, non-root final stages, slim operator image."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from chroma_operator.build.security import NON_ROOT_UID

ROOT = Path(__file__).resolve().parents[2]
FINAL_STAGES = ("operator", "encoder")
# repository:X.Y.Z[-variant][@sha256:...]: an exact release, never a floating tag.
PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[a-f0-9]{64})?$")


def _parser() -> DockerfileParser:
    parser = DockerfileParser(fileobj=(ROOT / "Dockerfile").open("rb"))
    return parser


def _stages() -> dict[str, list[dict[str, Any]]]:
    """Instructions per stage name, ARGs before the first FROM under ''."""
    stages: dict[str, list[dict[str, Any]]] = {"": []}
    current = ""
    for ins in _parser().structure:
        if ins["instruction"] == "FROM":
            parts = ins["value"].split()
            current = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else parts[0]
            stages[current] = []
        stages[current].append(ins)
    return stages


def _global_args() -> dict[str, str]:
    out = {}
    for ins in _stages()[""]:
        if ins["instruction"] == "ARG" and "=" in ins["value"]:
            key, value = ins["value"].split("=", 1)
            out[key] = value
    return out


def _base(stage: str) -> str:
    ref = _stages()[stage][0]["value"].split()[0]
    match = re.fullmatch(r"\$\{(\w+)\}", ref)
    return _global_args()[match.group(1)] if match else ref


def test_final_stages_exist() -> None:
    stages = _stages()
    for stage in FINAL_STAGES:
        assert stage in stages


@pytest.mark.parametrize("stage", [s for s in _stages() if s])
def test_base_images_are_pinned(stage: str) -> None:
    base = _base(stage)
    if base in _stages():
        return  # FROM an earlier stage
    assert "latest" not in base
    assert PINNED.match(base), base


def test_no_latest_anywhere() -> None:
    assert ":latest" not in (ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize("stage", FINAL_STAGES)
def test_final_stage_runs_as_non_root_numeric_uid(stage: str) -> None:
    users = [i["value"] for i in _stages()[stage] if i["instruction"] == "USER"]
    assert users, f"{stage} has no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert int(uid) == NON_ROOT_UID, "must match the pod securityContext"
    # Nothing after USER switches back.
    last_user = max(i for i, ins in enumerate(_stages()[stage]) if ins["instruction"] == "USER")
    assert not [i for i in _stages()[stage][last_user:] if i["instruction"] == "RUN"]


@pytest.mark.parametrize("stage", FINAL_STAGES)
def test_entrypoint_is_the_cli(stage: str) -> None:
    (entry,) = [i["value"] for i in _stages()[stage] if i["instruction"] == "ENTRYPOINT"]
    assert json.loads(entry) == ["chroma-operator"]


def test_operator_image_has_no_build_tools() -> None:
    stage = _stages()["operator"]
    assert not [i for i in stage if i["instruction"] == "RUN"], "no package installs in the runtime"
    copies = [i["value"] for i in stage if i["instruction"] == "COPY"]
    assert copies == ["--from=operator-build /opt/chroma-operator /opt/chroma-operator"]
    text = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"apt-get install[^\n]*(gcc|build-essential|make)", text)


def test_encoder_takes_torch_from_a_build_arg_index() -> None:
    stage = _stages()["encoder-build"]
    assert any(i["instruction"] == "ARG" and i["value"] == "TORCH_INDEX_URL" for i in stage)
    assert _global_args()["TORCH_INDEX_URL"].endswith("/whl/cpu")
    run = " ".join(i["value"] for i in stage if i["instruction"] == "RUN")
    assert '--index-url "${TORCH_INDEX_URL}"' in run and '".[encoder]"' in run


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*")] == "*"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "constraints.txt", "operator/"}
    copied = {
        src
        for stage in _stages().values()
        for ins in stage
        if ins["instruction"] == "COPY" and not ins["value"].startswith("--from")
        for src in ins["value"].split()[:-1]
    }
    assert copied <= allowed, copied
