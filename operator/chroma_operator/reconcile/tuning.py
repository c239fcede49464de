"""A finished tuning Job into `status.tuning`, the `Tuned` condition, and the live efSearch.

The Job's result is read back by `jobs.py`. Pure parts (status shape) are separate from
the one call that changes a live collection.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from chroma_operator.api.tuning_state import TunedPoint, TuningStatus, Verification

Obj = dict[str, Any]
TUNED = "Tuned"


def _point_text(p: TunedPoint) -> str:
    return (
        f"maxNeighbors={p.max_neighbors} efConstruction={p.ef_construction} "
        f"efSearch={p.ef_search}: recall {p.recall}, p50 {p.p50_ms} ms"
    )


def tuning_outcome(job_name: str, result: Obj | None) -> tuple[TuningStatus, bool, str, str]:
    """(status.tuning, Tuned?, reason, message) for a finished Job."""
    tuning = None
    if result is not None:
        try:
            tuning = TuningStatus.model_validate(
                {**{k: v for k, v in result.items() if k != "v"}, "job": job_name}
            )
        except ValidationError:
            tuning = None
    if tuning is None:
        message = f"job {job_name} finished without a readable result (see its logs)"
        return (
            TuningStatus(job=job_name, status="failed", message=message),
            False,
            "NoResult",
            message,
        )
    if tuning.status == "ok" and tuning.chosen is not None:
        return tuning, True, "Tuned", f"{tuning.collection}: {_point_text(tuning.chosen)}"
    reason = str(tuning.reason or "failed")
    message = str(tuning.message or reason)
    return tuning, False, "".join(w.capitalize() for w in reason.split("-")), message


VERIFY_TOLERANCE = 0.01
"""Live recall may sit this far under the target (plus twice the tuner's standard error)."""


def verification(tuning: TuningStatus, result: Obj | None) -> Verification:
    """Compare the live measurement after the restart with what the tuner predicted."""
    chosen = tuning.chosen or TunedPoint()
    if result is None or result.get("status") != "ok" or not result.get("verify"):
        reason = (result or {}).get("message") or "the verify Job left no readable result"
        return Verification(ok=False, message=f"could not verify the applied efSearch: {reason}")
    live = result["verify"]
    target = float(tuning.target_recall or 0.0)
    slack = VERIFY_TOLERANCE + 2 * float(chosen.recall_std_err or 0.0)
    ok = float(live["recall"]) >= target - slack
    message = (
        f"live recall@{tuning.k} {live['recall']} at efSearch {live.get('efSearch')} "
        f"(predicted {chosen.recall}, target {target}); p50 {live.get('p50Ms')} ms"
    )
    return Verification(
        ok=ok,
        recall=live["recall"],
        predicted=chosen.recall,
        ef_search=live.get("efSearch"),
        p50_ms=live.get("p50Ms"),
        p99_ms=live.get("p99Ms"),
        message=message if ok else "below target after the restart: " + message,
    )
