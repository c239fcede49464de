"""Restricted Pod Security Standard contexts, shared by every workload we create."""

from __future__ import annotations

from typing import Any

NON_ROOT_UID = 65532


def pod_security_context(fs_group: bool = True) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if fs_group:
        ctx["fsGroup"] = NON_ROOT_UID
        ctx["fsGroupChangePolicy"] = "OnRootMismatch"
    return ctx


def container_security_context(read_only_root: bool = True) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
