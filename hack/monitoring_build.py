"""Build Prometheus, promtool and Alertmanager from the Go module proxy into the machine-wide cache.

The local stack and the tests run the real servers (DESIGN.md §5), installed the way the control
plane is: ``go install`` at pinned versions, once, into ``~/.cache/opex/bin/<tool>-<version>/``
(``$OPEX_CACHE`` overrides the root). Nothing is downloaded at test time.

* Prometheus and promtool :data:`PROMETHEUS_MODULE_VERSION` (Prometheus 3.x is tagged
  ``v0.3MM.P`` as a Go module). Built without the ``builtinassets`` tag, so the web UI is absent;
  the HTTP API, scraping and rule evaluation are all there. About 5 minutes the first time.
* Alertmanager :data:`ALERTMANAGER_VERSION`. Newer releases embed a UI from ``ui/app/dist``,
  which their module zip lacks, and do not build with ``go install`` (REFERENCE.md).

Version ldflags (``github.com/prometheus/common/version``) make ``--version`` and the servers'
``build_info`` truthful. ``python hack/monitoring_build.py`` builds what is missing and prints the
binary directory.
"""
from __future__ import annotations

import sys
from pathlib import Path

import kube_build

PROMETHEUS_MODULE_VERSION = "v0.316.0"
ALERTMANAGER_VERSION = "v0.28.1"
PROMETHEUS_BINARIES = ("prometheus", "promtool")


def prometheus_release(module_version: str = PROMETHEUS_MODULE_VERSION) -> str:
    """The Prometheus release a module version is: ``v0.316.0`` → ``3.16.0``."""
    minor_patch = module_version.lstrip("v").split(".")
    return f"{int(minor_patch[1]) // 100}.{int(minor_patch[1]) % 100}.{minor_patch[2]}"


def prometheus_dir() -> Path:
    return kube_build.cache_root() / "bin" / f"prometheus-{PROMETHEUS_MODULE_VERSION}"


def alertmanager_dir() -> Path:
    return kube_build.cache_root() / "bin" / f"alertmanager-{ALERTMANAGER_VERSION}"


def _version_flags(version: str) -> str:
    pkg = "github.com/prometheus/common/version"
    return " ".join(["-s", "-w", f"-X {pkg}.Version={version}", f"-X {pkg}.Branch=release",
                     f"-X {pkg}.BuildUser=opex-hack", f"-X {pkg}.Revision=go-module-proxy"])


def _install(target: Path, binaries: tuple[str, ...], packages: list[str], version: str, log) -> Path:
    """``go install`` ``packages`` into ``target`` unless every binary is there; moved in atomically
    (a partial build never lands in the cache). Raises RuntimeError with ``go``'s stderr."""
    def build(work: Path, out: Path) -> None:
        for package in packages:
            log(f"building {package} (first run only; cached in {target})")
            kube_build._go(["install", "-trimpath", "-ldflags", _version_flags(version), package], work,
                           env={"GOBIN": str(out), "GOFLAGS": ""})

    return kube_build.cached_build(target, binaries, ", ".join(binaries), build)


def ensure_prometheus(log=print) -> Path:
    """Directory holding ``prometheus`` and ``promtool``, built on first use."""
    module = "github.com/prometheus/prometheus/cmd"
    return _install(prometheus_dir(), PROMETHEUS_BINARIES,
                    [f"{module}/{b}@{PROMETHEUS_MODULE_VERSION}" for b in PROMETHEUS_BINARIES],
                    prometheus_release(), log)


def ensure_alertmanager(log=print) -> Path:
    """Directory holding ``alertmanager``, built on first use."""
    return _install(alertmanager_dir(), ("alertmanager",),
                    [f"github.com/prometheus/alertmanager/cmd/alertmanager@{ALERTMANAGER_VERSION}"],
                    ALERTMANAGER_VERSION.lstrip("v"), log)


if __name__ == "__main__":
    quiet = {"log": lambda m: print(m, file=sys.stderr)}
    print(ensure_prometheus(**quiet))
    print(ensure_alertmanager(**quiet))
