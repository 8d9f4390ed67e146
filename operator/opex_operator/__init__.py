"""opex-operator: the AWS CI/CD operations runbook as reconciled Kubernetes custom resources.

API group ``opex.dev``, version ``v1alpha1``; kinds ``Incident``, ``DriftCheck``, ``Rollback``.
"""

__version__ = "0.1.0"

GROUP = "opex.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
