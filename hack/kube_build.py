"""Build the local control plane's binaries (etcd, kube-apiserver) from the Go module proxy.

The way controller-runtime's envtest gets its binaries, without a download site: two throwaway
wrapper modules are generated and built with the machine's Go toolchain.

* ``kube-apiserver``: a module requiring ``k8s.io/kubernetes`` at :data:`KUBE_VERSION`. k/k's
  go.mod replaces every ``k8s.io/<staging>`` module with a local path, which ``go install``
  refuses; the wrapper replaces each of them (the list is read from k/k's own go.mod) with its
  tagged ``v0.<minor>.<patch>`` release instead. Version ldflags make ``/version`` truthful.
* ``etcd``: a wrapper ``main`` calling ``go.etcd.io/etcd/server/v3/etcdmain.Main``, at the etcd
  server version k/k's go.mod pins (the version upstream tested with that API server).
* the node (``make cluster``, hack/node.py): ``kube-controller-manager``, ``kube-scheduler``,
  ``kubelet`` and ``kube-proxy`` from the same wrapper module as the API server, and the pod
  sandbox's ``pause`` from ``build/pause/linux/pause.c`` in the k8s.io/kubernetes module zip
  (``gcc -static``, as k/k's build/pause/Makefile compiles it).

Binaries are cached in ``~/.cache/opex/bin/<KUBE_VERSION>/`` (the node's in
``~/.cache/opex/bin/node-<KUBE_VERSION>/``; ``$OPEX_CACHE`` overrides the root), so every clone on
the machine reuses them. The first build takes minutes and several GB of memory; later calls
return at once.

Usage: ``python hack/kube_build.py [--node]`` prints the binary directory (``--node``: the node's
too).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KUBE_VERSION = "v1.33.13"
BINARIES = ("etcd", "kube-apiserver")
NODE_COMMANDS = ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
NODE_BINARIES = (*NODE_COMMANDS, "pause")
# build/pause/Makefile's TAG at KUBE_VERSION: the sandbox image's version.
PAUSE_VERSION = "3.10.1"


def cache_root() -> Path:
    """Root of the machine-wide cache (``$OPEX_CACHE`` or ``~/.cache/opex``)."""
    return Path(os.environ.get("OPEX_CACHE", Path.home() / ".cache" / "opex"))


def bin_dir(version: str = KUBE_VERSION) -> Path:
    """Directory holding the binaries built for Kubernetes ``version``."""
    return cache_root() / "bin" / version


def node_bin_dir(version: str = KUBE_VERSION) -> Path:
    """Directory holding the node's binaries (:data:`NODE_BINARIES`) for Kubernetes ``version``."""
    return cache_root() / "bin" / f"node-{version}"


def _go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", **(env or {})}
    proc = subprocess.run(["go", *args], cwd=cwd, env=full_env, text=True, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"go {' '.join(args)} failed in {cwd}:\n{proc.stderr[-4000:]}")
    return proc.stdout


def module_gomod(module: str, work: Path) -> dict:
    """The go.mod of ``module`` (``path@version``) as ``go mod edit -json`` gives it."""
    info = json.loads(_go(["mod", "download", "-json", module], work))
    return json.loads(_go(["mod", "edit", "-json", info["GoMod"]], work))


def _kk_gomod(version: str, work: Path) -> dict:
    """k/k's go.mod at ``version``."""
    return module_gomod(f"k8s.io/kubernetes@{version}", work)


def staging_replaces(gomod: dict, version: str) -> dict[str, str]:
    """Map each staging module k/k replaces with a local path to its tagged release.

    ``gomod`` is ``go mod edit -json`` output; ``version`` is ``v1.M.P``; staging modules are
    tagged ``v0.M.P`` in lockstep with the release (k/k's staging/README.md).
    """
    _, minor, patch = version.lstrip("v").split(".")
    return {
        r["Old"]["Path"]: f"v0.{minor}.{patch}"
        for r in gomod.get("Replace") or []
        if r["New"]["Path"].startswith("./staging/")
    }


def required_version(gomod: dict, module: str) -> str:
    """The version of ``module`` that ``gomod`` requires (KeyError when absent)."""
    for req in gomod["Require"]:
        if req["Path"] == module:
            return req["Version"]
    raise KeyError(module)


def _build_kube(version: str, gomod: dict, work: Path, out: Path, commands: tuple[str, ...]) -> None:
    """Build ``k8s.io/kubernetes/cmd/<command>`` for each of ``commands`` into ``out`` (one ``go
    build``, so they share compiled packages) from a wrapper module that requires k/k at
    ``version`` with its staging modules replaced by their tags."""
    mod = work / "kube"
    if not mod.is_dir():
        mod.mkdir()
        lines = ["module opex.dev/hack/kube", "", "go 1.24", "",
                 f"require k8s.io/kubernetes {version}", "", "replace ("]
        lines += [f"\t{m} => {m} {v}" for m, v in sorted(staging_replaces(gomod, version).items())]
        lines += [")", ""]
        (mod / "go.mod").write_text("\n".join(lines))
    imports = "".join(f"import _ \"k8s.io/kubernetes/cmd/{c}\"\n" for c in commands)
    (mod / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\n{imports}")
    _go(["mod", "tidy"], mod)
    major, minor = version.lstrip("v").split(".")[:2]
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor={major}",
                  f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean",
                  f"-X {pkg}.buildDate={now}"]
    _go(["build", "-trimpath", "-ldflags", " ".join(["-s", "-w", *flags]),
         "-o", f"{out}/", *[f"k8s.io/kubernetes/cmd/{c}" for c in commands]], mod)


def _build_pause(version: str, work: Path, out: Path) -> None:
    """The sandbox binary, compiled as k/k's build/pause/Makefile does (``CFLAGS``), from the
    k8s.io/kubernetes module zip's source (the Go module proxy is the only source reachable)."""
    if shutil.which("gcc") is None:
        raise RuntimeError("gcc (and libc6-dev) are needed to build the pod sandbox's pause binary")
    info = json.loads(_go(["mod", "download", "-json", f"k8s.io/kubernetes@{version}"], work))
    source = Path(info["Dir"]) / "build" / "pause" / "linux" / "pause.c"
    proc = subprocess.run(["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_VERSION}-{version}",
                           "-o", str(out / "pause"), str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"gcc {source} failed:\n{proc.stderr[-4000:]}")


def _build_etcd(etcd_version: str, work: Path, out: Path) -> None:
    mod = work / "etcd"
    mod.mkdir()
    (mod / "go.mod").write_text(
        f"module opex.dev/hack/etcd\n\ngo 1.23\n\nrequire go.etcd.io/etcd/server/v3 {etcd_version}\n")
    (mod / "main.go").write_text(
        "package main\n\nimport (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\n"
        "func main() { etcdmain.Main(os.Args) }\n")
    _go(["mod", "tidy"], mod)
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "."], mod)


def cached_build(target: Path, binaries: tuple[str, ...], what: str, build) -> Path:
    """``target`` once it holds ``binaries``; else ``build(work, out)`` (a scratch directory and
    the one to write the binaries into) runs and they are moved into ``target`` at once."""
    if all((target / b).is_file() for b in binaries):
        return target
    if shutil.which("go") is None:
        raise RuntimeError(f"the Go toolchain is needed to build {what}; install Go >= 1.24")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"opex-{target.name}-build-") as tmp:
        work, out = Path(tmp), Path(tmp) / "out"
        out.mkdir()
        build(work, out)
        move_into_cache(out, binaries, target)
    return target


def ensure_binaries(version: str = KUBE_VERSION, log=print) -> Path:
    """Return the directory with ``etcd`` and ``kube-apiserver`` for ``version``, building them once.

    Raises RuntimeError with the failing ``go`` command's stderr when a build fails; a partial
    build never lands in the cache (binaries are moved in only when both exist).
    """
    target = bin_dir(version)

    def build(work: Path, out: Path) -> None:
        gomod = _kk_gomod(version, work)
        etcd_version = required_version(gomod, "go.etcd.io/etcd/server/v3")
        log(f"building etcd {etcd_version} (first run only; cached in {target})")
        _build_etcd(etcd_version, work, out)
        log(f"building kube-apiserver {version} (first run only; several minutes)")
        _build_kube(version, gomod, work, out, ("kube-apiserver",))

    return cached_build(target, BINARIES, "etcd and kube-apiserver", build)


def ensure_node_binaries(version: str = KUBE_VERSION, log=print) -> Path:
    """Return the directory with the node's binaries (:data:`NODE_BINARIES`) for ``version``,
    building them once (about 5 minutes on 2 cores with an empty Go build cache).

    Raises RuntimeError with the failing command's stderr; a partial build never lands in the cache.
    """
    target = node_bin_dir(version)

    def build(work: Path, out: Path) -> None:
        log(f"building {', '.join(NODE_COMMANDS)} {version} (first run only; several minutes; cached in {target})")
        _build_kube(version, _kk_gomod(version, work), work, out, NODE_COMMANDS)
        _build_pause(version, work, out)

    return cached_build(target, NODE_BINARIES, "the node's binaries", build)


def move_into_cache(built: Path, binaries: tuple[str, ...], target: Path) -> None:
    """Move ``binaries`` from ``built`` into the cache directory ``target`` at once (staged beside it,
    then renamed), so a partial build never lands there; a concurrent build that won is kept."""
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    for b in binaries:
        shutil.move(str(built / b), staged / b)
    if target.exists():
        shutil.rmtree(staged)
    else:
        staged.rename(target)


if __name__ == "__main__":
    quiet = {"log": lambda m: print(m, file=sys.stderr)}
    print(ensure_binaries(**quiet))
    if "--node" in sys.argv[1:]:
        print(ensure_node_binaries(**quiet))
