"""docs/argocd-health.lua, run by a real Lua 5.1 (Argo CD's dialect) on sample objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

lua51 = pytest.importorskip("lupa.lua51")

SCRIPT = (Path(__file__).resolve().parents[2] / "docs" / "argocd-health.lua").read_text()


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def health(obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(SCRIPT)
    return str(result["status"]), str(result["message"])


def cluster(phase: str | None, conditions: dict[str, str], generation: int = 3) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaCluster",
        "metadata": {"name": "search", "namespace": "search", "generation": generation},
        "spec": {"shards": 2},
    }
    if phase is not None:
        obj["status"] = {
            "phase": phase,
            "message": f"phase {phase}",
            "observedGeneration": 3,
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "reason": "Test",
                    "message": f"{kind} is {status}",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "observedGeneration": 3,
                }
                for kind, status in conditions.items()
            ],
        }
    return obj


@pytest.mark.parametrize(
    ("phase", "conditions", "expected"),
    [
        ("Ready", {"Ready": "True", "Progressing": "False", "Degraded": "False"}, "Healthy"),
        ("Degraded", {"Ready": "False", "Progressing": "False", "Degraded": "True"}, "Degraded"),
        (
            "Provisioning",
            {"Ready": "False", "Progressing": "True", "Degraded": "False"},
            "Progressing",
        ),
        ("Failed", {"Ready": "False", "Progressing": "False"}, "Degraded"),
        ("Ready", {"Ready": "True", "SLOMet": "False"}, "Healthy"),
        ("Pending", {}, "Progressing"),
    ],
)
def test_phase_and_conditions(phase: str, conditions: dict[str, str], expected: str) -> None:
    status, message = health(cluster(phase, conditions))
    assert status == expected
    assert message


def test_no_status_yet_is_progressing() -> None:
    assert health(cluster(None, {}))[0] == "Progressing"


def test_unobserved_generation_is_progressing() -> None:
    obj = cluster("Ready", {"Ready": "True"}, generation=4)
    assert health(obj) == ("Progressing", "Waiting for the operator to observe generation 4")


def test_failed_message_is_the_operators() -> None:
    assert health(cluster("Failed", {"Ready": "False"})) == ("Degraded", "phase Failed")


def test_the_operators_own_status_transitions() -> None:
    """Statuses from reconcile.status (what the operator publishes) map as documented."""
    from chroma_operator.api.validate import parse_cluster
    from chroma_operator.build import owner_of
    from chroma_operator.reconcile import status as st

    parsed = parse_cluster(
        {
            "apiVersion": "chroma.operator.dev/v1alpha1",
            "kind": "ChromaCluster",
            "metadata": {"name": "search"},
            "spec": {"shards": 2, "encoder": {"enabled": False}},
        }
    )
    owner, spec, now = owner_of(parsed, "search"), parsed.spec, "2026-01-01T00:00:00Z"

    def observed(ready: int) -> st.Observation:
        return st.Observation(
            shards=[st.ShardObservation(i, 1, 1 if i < ready else 0, True) for i in range(2)]
        )

    obj = cluster(None, {})
    expected = [(0, "Progressing"), (2, "Healthy"), (1, "Degraded"), (2, "Healthy")]
    for ready, health_status in expected:
        obj["status"], _ = st.next_status(
            obj.get("status", {}), owner, spec, observed(ready), 3, now
        )
        assert health(obj)[0] == health_status, (ready, obj["status"]["phase"])
    obj["status"], _ = st.failed_status(obj["status"], ["spec.shards: must be >= 1"], 3, now)
    assert health(obj) == ("Degraded", "spec.shards: must be >= 1")
