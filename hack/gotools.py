"""Build the Go command-line tools the chart's tests need from the Go module proxy, once.

* ``helm`` :data:`HELM_VERSION` (``go install helm.sh/helm/v3/cmd/helm@...``, about 2 minutes the
  first time): lints, renders and dry-runs ``charts/opex-operator``.
* ``kstatus``: ``hack/kstatus/main.go``, a few lines around ``sigs.k8s.io/cli-utils/pkg/kstatus``
  at the version ``hack/kstatus/go.mod`` pins: the library Flux calls to decide whether an applied
  object is healthy (kustomize-controller's ``wait: true``), so the tests read our objects'
  health exactly as Flux does, not as we think it does.

Both land in the machine-wide cache beside the control plane (``~/.cache/opex/bin/<tool>-<version>/``,
``$OPEX_CACHE`` overrides the root); later calls return the cached path at once.

``python hack/gotools.py`` builds what is missing and prints the paths.
"""
from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

import kube_build

HELM_VERSION = "v3.22.0"
KSTATUS_SOURCE = Path(__file__).resolve().parent / "kstatus"


def _kstatus_version() -> str:
    """The cli-utils version hack/kstatus/go.mod requires (the cache key of the helper)."""
    found = re.search(r"sigs\.k8s\.io/cli-utils (v\S+)", (KSTATUS_SOURCE / "go.mod").read_text())
    if found is None:
        raise RuntimeError(f"{KSTATUS_SOURCE / 'go.mod'} does not require sigs.k8s.io/cli-utils")
    return found.group(1)


def _install(target: Path, build) -> Path:
    """Run ``build(out_dir)`` unless ``target`` exists; move the result into place atomically."""
    if target.is_file():
        return target
    if shutil.which("go") is None:
        raise RuntimeError(f"the Go toolchain is needed to build {target.name}; install Go >= 1.24")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"opex-{target.name}-build-") as tmp:
        build(Path(tmp))
        staged = target.with_name(f".{target.name}.{Path(tmp).name}")
        shutil.move(str(Path(tmp) / target.name), staged)
        staged.rename(target)  # a concurrent build that won is replaced by an identical binary
    return target


def ensure_helm(log=print) -> Path:
    """Path of the ``helm`` binary at :data:`HELM_VERSION`, built on first use.

    Raises RuntimeError with the failing ``go`` command's stderr when the build fails.
    """
    target = kube_build.cache_root() / "bin" / f"helm-{HELM_VERSION}" / "helm"

    def build(out: Path) -> None:
        log(f"building helm {HELM_VERSION} from the Go module proxy (first run only; about 2 minutes)")
        # As helm's own Makefile does: without these, `helm template` and `helm lint` assume
        # Kubernetes 1.20; helm's release builds assume 1.<minor of the client-go it is built with>.
        gomod = kube_build.module_gomod(f"helm.sh/helm/v3@{HELM_VERSION}", out)
        minor = kube_build.required_version(gomod, "k8s.io/client-go").split(".")[1]
        flags = [f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"]
        for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
            flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={minor}"]
        kube_build._go(["install", "-trimpath", "-ldflags", " ".join(["-s", "-w", *flags]),
                        f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"], out, env={"GOBIN": str(out), "GOFLAGS": ""})

    return _install(target, build)


def ensure_kstatus(log=print) -> Path:
    """Path of the ``kstatus`` helper (see the module docstring), built on first use."""
    target = kube_build.cache_root() / "bin" / f"kstatus-{_kstatus_version()}" / "kstatus"

    def build(out: Path) -> None:
        log(f"building the kstatus helper (cli-utils {_kstatus_version()}) from the Go module proxy")
        kube_build._go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "kstatus"), "."], KSTATUS_SOURCE,
                       env={"GOFLAGS": "-mod=readonly"})

    return _install(target, build)


if __name__ == "__main__":
    quiet = {"log": lambda m: print(m, file=sys.stderr)}
    print(ensure_helm(**quiet))
    print(ensure_kstatus(**quiet))
