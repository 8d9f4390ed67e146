"""``make cluster``: the operator as users run it, its Helm chart installed on a real node.

``python hack/cluster.py prepare|image|up|down [DIR]``.

``prepare`` (part of ``make tools``) builds the node's binaries (hack/kube_build.py) and, where a
node can run (root, Debian), installs its Debian packages and builds the base and sandbox images
(hack/images.py), so that later runs only build what changed; elsewhere it says why not.
``image`` (``make test``, before pytest) builds the operator image when the tree changed what it
holds, where a node can run.

``up`` starts, under ``.local/cluster/``:
  1. a control plane listening on the node's address (controlplane.py) and one node (node.py);
  2. the operator image built from the Dockerfile (images.py; cached by its build context) and the
     sandbox image, imported into the node's containerd;
  3. the fake AWS (moto, fakeaws.py) on the node's address, seeded with the demo's estate;
  4. ``helm install opex charts/opex-operator -n opex-system`` with hack/cluster-values.yaml (two
     replicas with leader election, the image, ``aws.endpointUrl`` at the fake AWS, the local policy),
     waiting until the Deployment is available;
and leaves it running (kubeconfig ``.local/cluster/cp/kubeconfig``). ``down`` (also ``make down``)
stops it by the pids recorded in ``.local/cluster/`` (or ``DIR``: a test run's, if it was killed)
and undoes the node's host changes.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import controlplane
import fakeaws
import images
import kube_build
import node
import procs

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local" / "cluster"
RECORD = LOCAL / "cluster.json"
CHART = ROOT / "charts" / "opex-operator"
VALUES = ROOT / "hack" / "cluster-values.yaml"
POLICY = ROOT / "hack" / "policy-local.yaml"
NAMESPACE, RELEASE = "opex-system", "opex"


def prepare(log=print) -> None:
    """What ``make tools`` builds for the node (see the module docstring)."""
    log(f"node binaries: {kube_build.ensure_node_binaries(log=log)}")
    try:
        node.check_prerequisites()
    except node.NodeUnavailable as err:
        log(f"no node on this machine ({err}): make cluster and the node's tests will say so")
        return
    images.pause_archive(log)
    log(f"base images: {images.python_image(log)}, {images.go_image(log)}")


def image(log=print) -> None:
    """The operator image, built now if the tree changed what it holds (see the module docstring)."""
    try:
        node.check_prerequisites()
    except node.NodeUnavailable as err:
        log(f"no operator image built: no node on this machine ({err})")
        return
    log(f"operator image: {' '.join(map(str, images.operator_image(log)))}")


@dataclass
class Cluster:
    """A control plane and its node, the images on it."""

    cp: controlplane.ControlPlane
    node: node.Node
    image: str

    @property
    def kubeconfig(self) -> Path:
        return self.cp.kubeconfig

    @property
    def address(self) -> str:
        return self.cp.address or ""

    def stop(self) -> None:
        self.node.stop()
        self.cp.stop()


def start(state_dir: Path, log=print) -> Cluster:
    """Build or reuse the images, start a control plane and a node with them under ``state_dir``.

    NodeUnavailable when this machine cannot run a node; RuntimeError (with the failing part's
    output) when a build or a start fails, after stopping what had started.
    """
    node.check_prerequisites()
    pause_name, pause = images.pause_archive(log)
    image, archive = images.operator_image(log)
    cp = controlplane.ControlPlane(Path(state_dir) / "cp", address=node.node_address()).start()
    try:
        log(f"starting the node (containerd, kubelet, kube-proxy, scheduler, controller-manager) with {image}")
        started = node.Node(Path(state_dir) / "node", cp, [pause, archive], pause_name).start(log=log)
    except BaseException:
        cp.stop()
        raise
    return Cluster(cp, started, image)


def install_chart(helm: Path, kubeconfig: Path, image: str, aws_url: str, work: Path,
                  timeout: str = "300s") -> subprocess.CompletedProcess:
    """``helm install`` the chart as :data:`RELEASE` in :data:`NAMESPACE` with hack/cluster-values.yaml,
    ``image`` (``repository:tag``), the fake AWS at ``aws_url`` and the local policy; waits until
    the Deployment is available (``--wait``). Raises RuntimeError with helm's output on failure."""
    import yaml

    repository, tag = image.rsplit(":", 1)
    overrides = work / "cluster-install-values.yaml"
    overrides.write_text(json.dumps({"image": {"repository": repository, "tag": tag},
                                     "aws": {"endpointUrl": aws_url},
                                     "policy": yaml.safe_load(POLICY.read_text())}))
    argv = [str(helm), "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
            "-f", str(VALUES), "-f", str(overrides), "--kubeconfig", str(kubeconfig), "--wait", "--timeout", timeout]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"helm install failed:\n{proc.stdout}{proc.stderr}")
    return proc


def up() -> int:
    import gotools

    down(quiet=True)
    LOCAL.mkdir(parents=True, exist_ok=True)
    try:
        cluster = start(LOCAL)
    except node.NodeUnavailable as err:
        print(f"make cluster: {err}", file=sys.stderr)
        return 1
    pids: dict[str, int] = {}
    try:
        print("starting the fake AWS (moto) on the node's address, with the demo estate ...", flush=True)
        aws, url = fakeaws.spawn(LOCAL / "fakeaws.log", LOCAL / "aws-url", "--host", cluster.address, "--seed", "demo")
        pids["fakeaws"] = aws.pid
        RECORD.write_text(json.dumps({"pids": pids, "kubeconfig": str(cluster.kubeconfig), "aws": url,
                                      "image": cluster.image}, indent=2))
        print(f"helm install {RELEASE} charts/opex-operator -n {NAMESPACE} ...", flush=True)
        install_chart(gotools.ensure_helm(), cluster.kubeconfig, cluster.image, url, LOCAL)
    except BaseException:
        for pid in pids.values():
            procs.terminate(pid)
        RECORD.unlink(missing_ok=True)
        cluster.stop()
        raise
    kubectl = ["kubectl", f"--kubeconfig={cluster.kubeconfig}"]
    print(subprocess.run([*kubectl, "get", "nodes,pods", "-n", NAMESPACE, "-o", "wide"], capture_output=True,
                         text=True).stdout)
    print(f"export KUBECONFIG={cluster.kubeconfig}\nkubectl apply -f examples/incident-deployment-failure.yaml"
          f"\nmake down   # stops it and undoes the node's host changes")
    return 0


def down(quiet: bool = False, state_dir: Path = LOCAL) -> bool:
    """Stop a cluster :func:`up` or :func:`start` started under ``state_dir`` (by its recorded
    pids) and undo the node's host changes; False when none was running."""
    stopped = False
    record = state_dir / RECORD.name
    if record.exists():
        for pid in json.loads(record.read_text())["pids"].values():
            procs.terminate(pid)
        record.unlink()
        stopped = True
    stopped = node.stop_recorded(state_dir / "node") or stopped
    stopped = controlplane.stop_recorded(state_dir / "cp") or stopped
    if not quiet and stopped:
        print("stopped the local cluster")
    return stopped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["prepare", "image", "up", "down"])
    parser.add_argument("dir", nargs="?", type=Path, default=LOCAL, help="down: the cluster's directory")
    args = parser.parse_args()
    if args.command in ("prepare", "image"):
        (prepare if args.command == "prepare" else image)()
        return 0
    if args.command == "up":
        return up()
    if not down(state_dir=args.dir.resolve()):
        print("no local cluster was running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
