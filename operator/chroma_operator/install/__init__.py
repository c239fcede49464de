"""Install the operator itself: plain manifests and the generated parts of the Helm chart.

Both paths read the CRD from `api.crd` and the RBAC rules from `reconcile.rbac`, so
`kubectl apply`, `helm install` and the running operator never disagree.
"""

from __future__ import annotations

from chroma_operator.install.manifests import InstallOptions, build_install

__all__ = ["InstallOptions", "build_install"]
