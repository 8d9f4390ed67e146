"""Operator settings, read once from the environment at start-up.

The Helm chart sets these from its values; the local stack and the tests set them directly.

=========================  ==========================================================  ========
variable                   meaning                                                     default
=========================  ==========================================================  ========
OPEX_NAMESPACES            comma-separated namespaces (globs) to watch; all when empty  (all)
OPEX_METRICS_PORT          port of the Prometheus ``/metrics`` endpoint                  8080
OPEX_HEALTH_PORT           port of the liveness endpoint ``/healthz``                    8081
OPEX_BIND_ADDRESS          address both endpoints listen on                             0.0.0.0
OPEX_POLICY_FILE           YAML policy (roles, regions, actions per namespace)          (none)
OPEX_MAX_WORKERS           threads for blocking AWS / Kubernetes calls                    8
OPEX_RESYNC_SECONDS        longest a reconciled object waits before it is looked at      300
                           again with no change
AWS_REGION                 default AWS region                                          us-east-1
OPEX_TERRAFORM             the terraform (or tofu) binary                               terraform
OPEX_WORK_DIR              DriftCheck run directories (saved plans live here)          $TMPDIR/opex/work
OPEX_CACHE_DIR             git mirrors and the provider plugin cache                    $TMPDIR/opex/cache
=========================  ==========================================================  ========
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_TMP = Path(tempfile.gettempdir()) / "opex"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """Process-wide settings. Raises ValueError from :meth:`from_env` on a malformed variable."""

    namespaces: tuple[str, ...] = ()
    metrics_port: int = 8080
    health_port: int = 8081
    bind_address: str = "0.0.0.0"
    policy_file: Path | None = None
    max_workers: int = 8
    resync_seconds: int = 300
    aws_region: str = "us-east-1"
    terraform: str = "terraform"
    work_dir: Path = field(default_factory=lambda: _TMP / "work")
    cache_dir: Path = field(default_factory=lambda: _TMP / "cache")

    @classmethod
    def from_env(cls) -> "Settings":
        namespaces = tuple(n.strip() for n in os.environ.get("OPEX_NAMESPACES", "").split(",") if n.strip())
        policy = os.environ.get("OPEX_POLICY_FILE") or None
        return cls(
            namespaces=namespaces,
            metrics_port=_int("OPEX_METRICS_PORT", 8080),
            health_port=_int("OPEX_HEALTH_PORT", 8081),
            bind_address=os.environ.get("OPEX_BIND_ADDRESS", "0.0.0.0"),
            policy_file=Path(policy) if policy else None,
            max_workers=_int("OPEX_MAX_WORKERS", 8),
            resync_seconds=_int("OPEX_RESYNC_SECONDS", 300),
            aws_region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            terraform=os.environ.get("OPEX_TERRAFORM") or "terraform",
            work_dir=Path(os.environ.get("OPEX_WORK_DIR") or _TMP / "work"),
            cache_dir=Path(os.environ.get("OPEX_CACHE_DIR") or _TMP / "cache"),
        )
