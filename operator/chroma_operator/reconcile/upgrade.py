"""Rolling Chroma upgrade: one shard at a time, one replica at a time. Pure.

A change of `spec.version` or `spec.image` is not handed to every StatefulSet at once
(they would all roll together, and with one replica per shard every shard would be down
at the same moment). Shards not yet reached keep the image their StatefulSet runs; one
shard at a time gets the new one, and its StatefulSet's RollingUpdate replaces one pod
at a time, each ready before the next. The next shard starts only once the whole shard is
rolled and ready. A pod of the new version that keeps failing stops the roll: the rest of
the cluster stays on the old version, and a Warning says which pod.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from chroma_operator.api import conditions as cond
from chroma_operator.reconcile.rollout import statefulset_rolled

Obj = dict[str, Any]
UpgradeState = Literal["Rolling", "Done", "Failed"]
FAILURE_THRESHOLD = 3
"""Restarts of a new-version pod (its liveness probe failed, or it crashed) that stop the roll."""
PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName"}


@dataclass(frozen=True)
class Step:
    """The image each shard is built with now, the status.upgrade to publish, Events."""

    images: dict[int, str]
    status: Obj | None
    events: list[cond.Event] = field(default_factory=list)

    @property
    def rolling(self) -> bool:
        return bool(self.status and self.status.get("state") == "Rolling")


def live_image(sts: Mapping[str, Any] | None) -> str | None:
    """The Chroma image a shard's StatefulSet runs (None: the shard does not exist yet)."""
    if sts is None:
        return None
    containers = sts.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    return next((str(c.get("image")) for c in containers if c.get("name") == "chroma"), None)


def pod_failure(pods: list[Obj], image: str, threshold: int = FAILURE_THRESHOLD) -> str | None:
    """Why a pod of the new version counts as failed, or None while it may still come up."""
    for pod in pods:
        spec_images = {c.get("image") for c in pod.get("spec", {}).get("containers", [])}
        if image not in spec_images:
            continue
        for cs in (pod.get("status") or {}).get("containerStatuses", []):
            if cs.get("name") != "chroma":
                continue
            waiting = (cs.get("state") or {}).get("waiting") or {}
            name = pod.get("metadata", {}).get("name", "?")
            if waiting.get("reason") in PULL_FAILURES:
                return f"pod {name}: {waiting['reason']} for {image}"
            restarts = int(cs.get("restartCount", 0) or 0)
            if restarts >= threshold:
                return f"pod {name}: not ready, restarted {restarts} times on {image}"
    return None


def plan(
    desired: str,
    shards: int,
    replicas: int,
    live: Mapping[int, Obj | None],
    previous: Mapping[str, Any] | None,
    failure: str | None = None,
    now: str = "",
) -> Step:
    """Decide which image every shard runs in this pass.

    `live` holds the shard StatefulSets as read; `failure` (from `pod_failure`) is about
    the shard in flight; `previous` is status.upgrade.
    """
    images = {i: live_image(live.get(i)) or desired for i in range(shards)}
    old = [i for i in range(shards) if images[i] != desired]
    prev = dict(previous or {})
    same_target = prev.get("to") == desired
    if prev.get("state") == "Failed" and same_target:
        return Step(images, prev)  # stopped: hold every shard where it is until the spec changes
    in_flight = [
        i
        for i in range(shards)
        if images[i] == desired
        and prev.get("state") == "Rolling"
        and same_target
        and not statefulset_rolled(live.get(i) or {}, replicas)
    ]
    if not old and not in_flight:
        if prev.get("state") == "Rolling":
            done = {**prev, "state": "Done", "shardsDone": shards, "current": None, "at": now}
            done["message"] = f"every shard runs {desired}"
            return Step(images, done, [cond.Event("Normal", "Upgraded", done["message"])])
        return Step(images, prev or None)
    source = (
        prev["from"]
        if same_target and prev.get("from")
        else Counter(images[i] for i in old).most_common(1)[0][0]
    )
    base: Obj = {
        "from": source,
        "to": desired,
        "shards": shards,
        "shardsDone": shards - len(old) - len(in_flight),
        "startedAt": prev.get("startedAt") if same_target and prev.get("startedAt") else now,
    }
    if in_flight:
        current = in_flight[0]
        if failure:
            message = (
                f"upgrade to {desired} stopped at shard {current}: {failure}; "
                f"{len(old)} shard(s) still run {source}"
            )
            failed = {**base, "state": "Failed", "current": current, "message": message}
            return Step(images, failed, [cond.Event("Warning", "UpgradeFailed", message)])
        message = f"shard {current}: rolling to {desired}, one replica at a time"
        return Step(images, {**base, "state": "Rolling", "current": current, "message": message})
    current = old[0]
    images[current] = desired
    message = f"shard {current}: rolling from {images_of(live, current) or source} to {desired}"
    return Step(
        images,
        {**base, "state": "Rolling", "current": current, "message": message},
        [cond.Event("Normal", "Upgrading", message)],
    )


def images_of(live: Mapping[int, Obj | None], index: int) -> str | None:
    return live_image(live.get(index))
