"""Container images built on this machine, without a daemon or a registry (REFERENCE.md, "a real node").

* Base images from Debian with ``mmdebstrap`` (``--variant=minbase``), made images with ``buildah
  from scratch`` + ``add`` + ``commit``: :func:`python_image` (bookworm with its Python 3.11 and
  venv) stands in for ``python:3.11-slim-bookworm`` and :func:`go_image` (bookworm with this
  machine's Go toolchain, the one hack/ builds every binary with) for ``golang:1.26-bookworm``.
* :func:`pause_archive`: the pod sandbox image from the ``pause`` binary hack/kube_build.py compiles.
* :func:`operator_image`: the repository's Dockerfile, built by ``buildah bud --isolation chroot``
  with those two as its ``PYTHON_IMAGE``/``GO_IMAGE`` args. Behind a TLS-inspecting proxy (as
  here) pip, uv and go inside the build need the host's CA bundle: it is bind-mounted over the
  build containers' ``/etc/ssl/certs/ca-certificates.crt`` for the build's RUN steps only, so the
  image carries Debian's bundle, never the host's.

Images live in buildah's storage under ``~/.cache/opex/buildah`` (its layer cache keeps the
OpenTofu stage across builds) and, as OCI archives for ``ctr images import``, in
``~/.cache/opex/images/`` (``$OPEX_CACHE`` overrides the root). The operator image is tagged with
the digest of its build context (the files .dockerignore lets in, the Dockerfile and the base
images' ids), so an unchanged tree reuses it and any change builds a new one.

``python hack/images.py`` builds what is missing and prints the operator image's reference and archive.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kube_build

ROOT = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
MIRRORS = (f"deb http://deb.debian.org/debian {SUITE} main",
           f"deb http://deb.debian.org/debian {SUITE}-updates main",
           f"deb http://deb.debian.org/debian-security {SUITE}-security main")
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OPERATOR_REPOSITORY = "localhost/opex-operator"
PAUSE_IMAGE = f"localhost/opex/pause:{kube_build.PAUSE_VERSION}"
# The Dockerfile's OpenTofu stage, tagged so that pruning old builds keeps it (its layer cache is the
# 5-minute compile of OpenTofu).
TOFU_STAGE = ("tofu", "localhost/opex/operator-tofu-stage:latest")
# The Debian packages the builds run on (hack/node.py installs them as it installs its own).
HOST_PACKAGES = {"buildah": "buildah", "mmdebstrap": "mmdebstrap"}
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def storage() -> Path:
    return kube_build.cache_root() / "buildah"


def archives() -> Path:
    return kube_build.cache_root() / "images"


def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``buildah`` on the project's own storage (never the machine's default one)."""
    flags = ["--root", str(storage() / "root"), "--runroot", str(storage() / "run"), "--storage-driver", "overlay"]
    proc = subprocess.run(["buildah", *flags, *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-6000:]}")
    return proc


def image_id(name: str) -> str | None:
    """The id of image ``name`` in the project's storage, or None."""
    proc = buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", name, check=False)
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def _recipe_tag(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:10]


def _debian_image(name: str, packages: tuple[str, ...], log, *, copy: tuple[tuple[str, str], ...] = (),
                  env: dict[str, str] | None = None, workdir: str = "/") -> str:
    """Build ``name`` (once) from a ``mmdebstrap --variant=minbase`` root with ``packages``, host
    directories ``copy`` (source, destination) added, and ``env`` in its config."""
    if image_id(name):
        return name
    from node import ensure_host_packages

    ensure_host_packages(_missing(HOST_PACKAGES))
    log(f"building the base image {name} with mmdebstrap (first run only; about a minute)")
    with tempfile.TemporaryDirectory(prefix="opex-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        proc = subprocess.run(["mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(packages)}",
                               SUITE, str(rootfs), *MIRRORS], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"mmdebstrap failed:\n{proc.stderr[-4000:]}")
        container = buildah("from", "scratch").stdout.strip()
        try:
            buildah("add", container, str(rootfs), "/")
            for source, destination in copy:
                buildah("copy", container, source, destination)
            config = ["--workingdir", workdir]
            for key, value in {"PATH": PATH_ENV, "LANG": "C.UTF-8", **(env or {})}.items():
                config += ["--env", f"{key}={value}"]
            buildah("config", *config, container)
            buildah("commit", "--quiet", container, name)
        finally:
            buildah("rm", container, check=False)
    return name


def _missing(commands: dict[str, str]) -> list[str]:
    return sorted({pkg for cmd, pkg in commands.items() if shutil.which(cmd) is None})


def python_image(log=print) -> str:
    """Debian bookworm with its Python 3.11 (``python3``, ``python3-venv``): the ``PYTHON_IMAGE``."""
    packages = ("python3", "python3-venv", "ca-certificates")
    return _debian_image(f"localhost/opex/python:3.11-{SUITE}-{_recipe_tag(packages, MIRRORS)}", packages, log)


def go_image(log=print) -> str:
    """Debian bookworm with this machine's Go toolchain in /usr/local/go: the ``GO_IMAGE``."""
    version, goroot = subprocess.run(["go", "env", "GOVERSION", "GOROOT"], capture_output=True, text=True,
                                     check=True).stdout.split()
    packages = ("ca-certificates",)
    env = {"PATH": f"/go/bin:/usr/local/go/bin:{PATH_ENV}", "GOPATH": "/go", "GOTOOLCHAIN": "local"}
    name = f"localhost/opex/golang:{version.removeprefix('go')}-{SUITE}-{_recipe_tag(packages, MIRRORS, env)}"
    return _debian_image(name, packages, log, copy=((goroot, "/usr/local/go"),), env=env, workdir="/go")


def push_archive(name: str, archive: Path) -> Path:
    """Write image ``name`` as an OCI archive carrying its name (``ctr images import`` keeps it)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    staged = archive.with_name(f".{archive.name}.partial")
    staged.unlink(missing_ok=True)
    buildah("push", "--quiet", name, f"oci-archive:{staged}:{name}")
    staged.rename(archive)
    return archive


def pause_archive(log=print) -> tuple[str, Path]:
    """The pod sandbox image (:data:`PAUSE_IMAGE`, as k/k's build/pause/linux/Dockerfile makes it:
    the static ``pause`` binary alone, as user 65535); returns (name, OCI archive)."""
    archive = archives() / f"pause-{kube_build.PAUSE_VERSION}-{kube_build.KUBE_VERSION}.tar"
    if archive.is_file():
        return PAUSE_IMAGE, archive
    binary = kube_build.ensure_node_binaries(log=log) / "pause"
    container = buildah("from", "scratch").stdout.strip()
    try:
        buildah("copy", container, str(binary), "/pause")
        buildah("config", "--user", "65535:65535", "--entrypoint", '["/pause"]', container)
        buildah("commit", "--quiet", container, PAUSE_IMAGE)
    finally:
        buildah("rm", container, check=False)
    return PAUSE_IMAGE, push_archive(PAUSE_IMAGE, archive)


def context_files(root: Path = ROOT) -> list[Path]:
    """The files of the build context: what .dockerignore lets in (its ``*`` then ``!path`` lines,
    minus its other patterns), sorted. ValueError on a .dockerignore of another shape."""
    lines = [ln.strip() for ln in (root / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    if lines[0] != "*":
        raise ValueError(".dockerignore must start with '*' (nothing in the context unless listed)")
    included = [ln[1:].rstrip("/") for ln in lines[1:] if ln.startswith("!")]
    excluded = [ln.removeprefix("**/") for ln in lines[1:] if not ln.startswith("!")]
    files = []
    for entry in included:
        path = root / entry
        for f in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())):
            if not any(fnmatch.fnmatch(part, pattern) for part in f.relative_to(root).parts for pattern in excluded):
                files.append(f)
    return sorted(files)


def context_digest(build_args: dict[str, str], root: Path = ROOT) -> str:
    """sha256 over the Dockerfile, every context file (path and bytes) and ``build_args``."""
    digest = hashlib.sha256(json.dumps(sorted(build_args.items())).encode())
    for f in [root / "Dockerfile", *context_files(root)]:
        digest.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def operator_image(log=print) -> tuple[str, Path]:
    """The operator image built from the Dockerfile (see the module docstring), once per build
    context; returns (reference, OCI archive). RuntimeError with buildah's output on failure."""
    bases = {"PYTHON_IMAGE": python_image(log), "GO_IMAGE": go_image(log)}
    ids = {k: image_id(v) for k, v in bases.items()}
    tag = context_digest({**bases, **{f"{k}_ID": v for k, v in ids.items()}})[:16]
    reference = f"{OPERATOR_REPOSITORY}:{tag}"
    archive = archives() / f"opex-operator-{tag}.tar"
    if archive.is_file():
        return reference, archive
    log(f"building {reference} from the Dockerfile with buildah (the first build compiles OpenTofu: "
        f"about 10 minutes on 2 cores; later ones reuse that stage)")
    args = ["bud", "--isolation", "chroot", "--layers", "--file", str(ROOT / "Dockerfile")]
    for key, value in bases.items():
        args += ["--build-arg", f"{key}={value}"]
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if revision:
        args += ["--build-arg", f"REVISION={revision}"]
    if CA_BUNDLE.is_file():  # for the build's RUN steps only; the image keeps Debian's own bundle
        args += ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    buildah(*args, "--target", TOFU_STAGE[0], "--tag", TOFU_STAGE[1], str(ROOT))
    buildah(*args, "--tag", reference, str(ROOT))
    push_archive(reference, archive)
    _forget_older(reference, archive)
    return reference, archive


def _forget_older(reference: str, archive: Path) -> None:
    """Remove earlier operator images (their tags, archives and the layers only they used): the
    current one is kept, and the tagged base images and OpenTofu stage with their layer caches."""
    for old in archives().glob("opex-operator-*.tar"):
        if old != archive:
            old.unlink(missing_ok=True)
    for name in buildah("images", "--format", "{{.Name}}:{{.Tag}}").stdout.split():
        if name.startswith(f"{OPERATOR_REPOSITORY}:") and name != reference:
            buildah("rmi", name)
    buildah("rmi", "--prune")


if __name__ == "__main__":
    quiet = {"log": lambda m: print(m, file=sys.stderr)}
    print(pause_archive(**quiet)[1])
    print(*operator_image(**quiet))
