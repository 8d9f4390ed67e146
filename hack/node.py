"""One real node beside a local control plane: pods run, so the image and the chart run as users run them.

Debian's ``containerd``, ``runc`` and ``containernetworking-plugins`` (bridge CNI) and, from
hack/kube_build.py at the control plane's version, the kubelet, kube-proxy (iptables mode, so the
``kubernetes`` Service reaches the API server), kube-scheduler and kube-controller-manager
(ServiceAccounts, ReplicaSets, Jobs, garbage collection). The control plane must run for a node
(``ControlPlane(dir, address=node_address())``). What this VM needs (REFERENCE.md, "a real node on
these machines"): root; ``restrict_oom_score_adj`` (no CAP_SYS_RESOURCE, so runc cannot lower an
``oom_score_adj``); cgroupfs (no systemd), cgroup v1 tolerated; the sandbox image built here
(hack/images.py: no registry is reachable, pods use ``imagePullPolicy: Never``); no cluster DNS
(pods find Services through environment variables).

Everything lives under ``state_dir`` (configs, containerd's root and state, the kubelet's root
dir, pod logs, the CNI's IP allocations, logs) except what the kubelet, containerd and the CNI
change on the host whatever they are told. :func:`host_snapshot` records that before the start
and :meth:`Node.stop` (or :func:`stop_recorded` from another process) undoes it, each by the name
of what was created: the ``opex0`` bridge; iptables rules and chains created since the snapshot
(``KUBE-*`` by the kubelet and kube-proxy, ``CNI-*`` by the bridge plugin) and netfilter
accounting objects (kube-proxy counts dropped invalid packets in one); the sysctls the
kubelet and the bridge plugin set; the ``kubepods`` cgroups; network namespaces under /run/netns;
and ``/var/lib/kubelet/device-plugins``, ``/var/log/containers``, ``/var/lib/cni`` and
``/run/containerd`` when they did not exist before. Processes are stopped by the pids recorded in
``state_dir/node.json``, containers through containerd by their ids. One node runs on a machine
at a time (host names and ports are shared): a second start is refused, naming the first.

Usage::

    cp = ControlPlane(Path(".local/cluster/cp"), address=node_address()).start()
    node = Node(Path(".local/cluster/node"), cp, [pause_archive, image_archive], pause_name).start()  # Ready
    ...
    node.stop(); cp.stop()
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import controlplane
import kube_build
from procs import alive, free_port, spawn, tail, terminate

NODE_NAME = "opex-node"
POD_CIDR = "10.244.0.0/24"
BRIDGE = "opex0"
# The Debian packages the node runs on (``apt-get install`` by :func:`ensure_host_packages`).
HOST_PACKAGES = {"containerd": "containerd", "runc": "runc", "/usr/lib/cni/bridge": "containernetworking-plugins",
                 "iptables": "iptables", "conntrack": "conntrack", "nfacct": "nfacct"}
# Machine-wide: which node runs here (its state dir and pids), so a second one is refused.
OWNER = Path("/run/opex-node.json")
# Set on the host by the kubelet (kernel defaults it expects), the bridge plugin (forwarding) and
# kube-proxy; restored at stop to what they were.
SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
           "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward",
           "net/ipv4/conf/all/route_localnet", "net/bridge/bridge-nf-call-iptables")
# Paths the kubelet, containerd and the CNI create whatever they are configured with.
HOST_PATHS = ("/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/var/lib/cni", "/run/containerd",
              "/run/netns")
IPTABLES = ("iptables", "ip6tables")
TABLES = ("filter", "nat", "mangle")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class NodeUnavailable(RuntimeError):
    """This machine cannot run a node (the message says why and what would fix it)."""


def node_address() -> str:
    """The IPv4 address of the interface the default route leaves by (``$OPEX_NODE_ADDRESS``
    overrides): the node's InternalIP, where the API server and the fake AWS listen for pods."""
    if os.environ.get("OPEX_NODE_ADDRESS"):
        return os.environ["OPEX_NODE_ADDRESS"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))  # TEST-NET-2; no packet is sent: this asks the routing table
        except OSError as err:
            raise NodeUnavailable(f"no default route, so no address for the node ({err}); set OPEX_NODE_ADDRESS")
        address = s.getsockname()[0]
    if ipaddress.ip_address(address).is_loopback:
        raise NodeUnavailable("the default route leaves by loopback; set OPEX_NODE_ADDRESS to the host's address")
    return address


def missing_packages() -> list[str]:
    """The Debian packages of :data:`HOST_PACKAGES` whose command is absent."""
    return sorted({pkg for cmd, pkg in HOST_PACKAGES.items()
                   if not (Path(cmd).exists() if cmd.startswith("/") else shutil.which(cmd, path=_sbin_path()))})


def _sbin_path() -> str:
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def ensure_host_packages(packages: list[str], log=print) -> None:
    """``apt-get install`` ``packages`` (as CI does on a fresh VM, as root); NodeUnavailable when
    they are missing and this process cannot install them."""
    if not packages:
        return
    if os.geteuid() != 0:
        raise NodeUnavailable(f"the node needs root and the Debian packages {' '.join(packages)} "
                              f"(running as uid {os.geteuid()})")
    if shutil.which("apt-get") is None:
        raise NodeUnavailable(f"the node needs {' '.join(packages)} and this machine has no apt-get")
    log(f"installing {' '.join(packages)} from Debian (first run only)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:  # the package lists may be missing or stale on a fresh VM
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise NodeUnavailable(f"apt-get install {' '.join(packages)} failed:\n{proc.stderr[-2000:]}")


def check_prerequisites() -> None:
    """Raise NodeUnavailable, saying why, when a node cannot start here; install what is missing
    (Debian packages) when it can."""
    if os.geteuid() != 0:
        raise NodeUnavailable(f"the node (containerd, kubelet) needs root; running as uid {os.geteuid()}")
    if not CGROUP_ROOT.is_dir():
        raise NodeUnavailable(f"no cgroup file system at {CGROUP_ROOT}")
    ensure_host_packages(missing_packages())
    owner = running_owner()
    if owner is not None:
        raise NodeUnavailable(f"a node already runs on this machine (state {owner['state_dir']}, pids "
                              f"{owner['pids']}): one at a time; if its run is over, stop it with "
                              f"python hack/cluster.py down {Path(owner['state_dir']).parent}")


def running_owner() -> dict | None:
    """The record of the node running on this machine, or None (a record whose processes are all
    gone is stale and ignored)."""
    try:
        owner = json.loads(OWNER.read_text())
    except (OSError, ValueError):
        return None
    return owner if any(alive(pid) for pid in owner.get("pids", {}).values()) else None


# -- the host's state: recorded before the start, restored at stop -------------------------------
def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


def _iptables_save(binary: str, table: str) -> list[str]:
    proc = subprocess.run([f"{binary}-save", "-t", table], capture_output=True, text=True)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def _chains(lines: list[str]) -> list[str]:
    return [line[1:].split()[0] for line in lines if line.startswith(":")]


def _nfacct_names() -> list[str]:
    proc = _run("nfacct", "list", "json")
    try:
        return [c["name"] for c in json.loads(proc.stdout)["nfacct_counters"]]
    except (ValueError, KeyError):
        return []


def _cgroup_dirs() -> list[str]:
    return sorted(str(p) for p in CGROUP_ROOT.glob("*/kubepods")) + \
        ([str(CGROUP_ROOT / "kubepods")] if (CGROUP_ROOT / "kubepods").is_dir() else [])


def host_snapshot() -> dict:
    """What the node's components change on the host, as it is now (JSON-serialisable)."""
    sysctls = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            sysctls[name] = _sysctl_path(name).read_text().strip()
    netns = sorted(os.listdir("/run/netns")) if Path("/run/netns").is_dir() else []
    return {
        "sysctls": sysctls,
        "paths": [p for p in HOST_PATHS if os.path.lexists(p)],
        "chains": {f"{b}:{t}": _chains(_iptables_save(b, t)) for b in IPTABLES for t in TABLES},
        "cgroups": _cgroup_dirs(),
        "nfacct": _nfacct_names(),
        "netns": netns,
        "bridge_existed": Path(f"/sys/class/net/{BRIDGE}").exists(),
    }


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True)


def iptables_undo_plan(lines: list[str], chains_before: list[str]) -> tuple[list[list[str]], list[str]]:
    """What to remove from one table: ``lines`` is its ``iptables-save -t TABLE`` output now,
    ``chains_before`` the chains it had at the snapshot. Returns the ``-D`` arguments of every rule
    in a built-in or older chain that jumps to a chain created since (last rule first), and the
    created chains (to flush, then delete, with the rules inside them)."""
    created = [c for c in _chains(lines) if c not in chains_before]
    deletions = []
    for line in reversed([ln for ln in lines if ln.startswith("-A ")]):
        args = shlex.split(line)
        target = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-j", "-g", "--jump", "--goto")), "")
        if args[1] not in created and target in created:
            deletions.append(["-D", *args[1:]])
    return deletions, created


def _undo_iptables(before: dict, log) -> None:
    for key, old in before["chains"].items():
        binary, table = key.split(":")
        deletions, created = iptables_undo_plan(_iptables_save(binary, table), old)
        for args in deletions:
            _run(binary, "-w", "-t", table, *args)
        for flag in ("-F", "-X"):
            for chain in created:
                _run(binary, "-w", "-t", table, flag, chain)
        left = [c for c in _chains(_iptables_save(binary, table)) if c in created]
        if left:
            log(f"warning: {binary} -t {table}: could not delete chains {left}")


def mounts_below(mountinfo: str, prefixes: list[str]) -> list[str]:
    """Mount points in ``mountinfo`` (``/proc/self/mountinfo``'s text) at or below any of
    ``prefixes``, deepest first (the order they can be unmounted in)."""
    points = set()
    for line in mountinfo.splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
            points.add(point)
    return sorted(points, key=lambda p: (-p.count("/"), p))


def _unmount(prefixes: list[str]) -> None:
    for _ in range(3):  # a bind mount may hide another at the same point
        points = mounts_below(Path("/proc/self/mountinfo").read_text(), prefixes)
        if not points:
            return
        for point in points:
            if _run("umount", point).returncode:
                _run("umount", "--lazy", point)


def undo_host(before: dict, state_dir: Path, log=print) -> None:
    """Undo what the node changed on the host since ``before`` (:func:`host_snapshot`), by name."""
    new_netns = [n for n in (os.listdir("/run/netns") if Path("/run/netns").is_dir() else [])
                 if n not in before["netns"]]
    _unmount([str(state_dir), *[f"/run/netns/{n}" for n in new_netns]])
    for name in new_netns:
        with contextlib.suppress(OSError):
            os.unlink(f"/run/netns/{name}")
    if not before["bridge_existed"] and Path(f"/sys/class/net/{BRIDGE}").exists():
        _run("ip", "link", "delete", BRIDGE)
    _undo_iptables(before, log)
    for name in _nfacct_names():  # after the rules that count into them are gone
        if name not in before["nfacct"]:
            _run("nfacct", "delete", name)
    for name, value in before["sysctls"].items():
        with contextlib.suppress(OSError):
            if _sysctl_path(name).read_text().strip() != value:
                _sysctl_path(name).write_text(value)
    for top in _cgroup_dirs():
        if top in before["cgroups"]:
            continue
        for sub in sorted(Path(top).glob("**/"), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
    for path in HOST_PATHS:
        if path not in before["paths"] and os.path.lexists(path):
            _unmount([path])
            shutil.rmtree(path, ignore_errors=True)


# -- configuration --------------------------------------------------------------------------------
def _containerd_config(d: Path, pause_image: str) -> str:
    return f"""version = 2
root = "{d / 'root'}"
state = "{d / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{d / 'containerd.sock'}"

[ttrpc]
  address = "{d / 'containerd.sock.ttrpc'}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  # runc cannot set a negative oom_score_adj without CAP_SYS_RESOURCE (REFERENCE.md).
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d / 'runc'}"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d.parent / 'cni'}"
"""


def _cni_config(state_dir: Path) -> dict:
    gateway = str(next(ipaddress.ip_network(POD_CIDR).hosts()))
    return {"cniVersion": "0.4.0", "name": "opex-pods", "plugins": [
        {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR, "gateway": gateway}]],
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(state_dir / "cni-ipam")}}]}


def _kubelet_config(state_dir: Path, ca: Path, address: str, port: int, healthz: int, socket_path: Path) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": address, "port": port, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": healthz,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{socket_path}",
        # No systemd here; cgroup v1 only warns (REFERENCE.md).
        "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False,
        "podLogsDirectory": str(state_dir / "pod-logs"),
        "volumePluginDir": str(state_dir / "volume-plugins"),
        "resolvConf": "/etc/resolv.conf", "clusterDomain": "cluster.local",
        "serializeImagePulls": False,
        # A shared development VM: evict nothing for disk or memory the other work uses.
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "syncFrequency": "10s", "fileCheckFrequency": "10s", "nodeStatusUpdateFrequency": "5s",
    }


def _kube_proxy_config(address: str, kubeconfig: Path, healthz: int, metrics: int) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "mode": "iptables", "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME, "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{healthz}", "metricsBindAddress": f"127.0.0.1:{metrics}",
        "nodePortAddresses": [f"{address}/32"],
        # No route_localnet sysctl, and the host's conntrack limits left as they are.
        "iptables": {"localhostNodePorts": False},
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


class Node:
    """The node's processes (children of this one) and what they changed on the host.

    ``state_dir`` is created; ``images`` are OCI archives imported into containerd before the
    kubelet starts (the pause image among them: ``pause_image`` names it).
    """

    def __init__(self, state_dir: Path, cp: "controlplane.ControlPlane", images: list[Path], pause_image: str,
                 bin_dir: Path | None = None):
        if not cp.address:
            raise ValueError("a node needs a control plane started with address=node_address()")
        self.state_dir = Path(state_dir).resolve()
        self.cp, self.images, self.pause_image = cp, list(images), pause_image
        self.bin_dir = bin_dir
        self.kubeconfig = cp.kubeconfig
        self.socket = self.state_dir / "containerd" / "containerd.sock"
        self._procs: dict[str, subprocess.Popen] = {}
        self._before: dict | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 120.0, log=print) -> "Node":
        """Start containerd, import the images, start the kubelet, kube-proxy, the scheduler and
        the controller-manager; return once the node is Ready and the ``default`` ServiceAccount
        exists. NodeUnavailable when this machine cannot run one; RuntimeError with the failing
        component's log when a start fails (what was started is stopped and undone first)."""
        check_prerequisites()
        bins = self.bin_dir or kube_build.ensure_node_binaries(log=log)
        _unmount([str(self.state_dir)])  # an earlier node's, so that removing its files stays inside it
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True)
        self._before = host_snapshot()
        self._record()
        try:
            self._start_containerd()
            for archive in self.images:
                self.import_image(archive)
            self._start_kube(bins)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, log=print) -> None:
        """Stop every component and undo the host changes (see the module docstring). Safe to call
        twice, and after a failed start."""
        stop_node(self.state_dir, self._procs_by_pid(), self._before, self.kubeconfig, log)
        self._procs.clear()
        self._before = None

    def __enter__(self) -> "Node":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- containerd --------------------------------------------------------------------------
    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """``ctr`` against this node's containerd, in the ``k8s.io`` namespace (the kubelet's)."""
        proc = subprocess.run(["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def import_image(self, archive: Path) -> None:
        """Import an OCI archive (``buildah push ... oci-archive:FILE:NAME``) as the name it carries."""
        self.ctr("images", "import", "--no-unpack=false", str(archive))

    def _start_containerd(self) -> None:
        d = self.state_dir / "containerd"
        d.mkdir()
        (d / "config.toml").write_text(_containerd_config(d, self.pause_image))
        cni = self.state_dir / "cni"
        cni.mkdir()
        (cni / "10-opex.conflist").write_text(json.dumps(_cni_config(self.state_dir), indent=2))
        self._spawn("containerd", ["containerd", "--config", str(d / "config.toml"), "--log-level", "warn"])
        deadline = time.monotonic() + 30
        while self.ctr("version", check=False, timeout=10).returncode != 0:
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not answer within 30s:\n{self._tail('containerd')}")
            time.sleep(0.2)

    # -- Kubernetes --------------------------------------------------------------------------
    def _start_kube(self, bins: Path) -> None:
        pki = self.cp.state_dir / "pki"
        address = self.cp.address
        identities = {"kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
                      "kube-proxy": ("system:kube-proxy",),
                      "kube-scheduler": ("system:kube-scheduler",),
                      "kube-controller-manager": ("system:kube-controller-manager",)}
        configs = {}
        for name, (cn, *orgs) in identities.items():
            controlplane.issue_client_cert(pki, name, cn, *orgs)
            configs[name] = self.state_dir / f"{name}.kubeconfig"
            configs[name].write_text(controlplane.kubeconfig_yaml(self.cp.server, pki, user=name))
        kubelet_conf = self.state_dir / "kubelet.yaml"
        kubelet_conf.write_text(json.dumps(_kubelet_config(self.state_dir, pki / "ca.crt", address, free_port(),
                                                           free_port(), self.socket), indent=2))
        proxy_conf = self.state_dir / "kube-proxy.yaml"
        proxy_conf.write_text(json.dumps(_kube_proxy_config(address, configs["kube-proxy"], free_port(), free_port()),
                                         indent=2))
        self._spawn("kubelet", [str(bins / "kubelet"), f"--config={kubelet_conf}",
                                f"--kubeconfig={configs['kubelet']}", f"--root-dir={self.state_dir / 'kubelet'}",
                                f"--cert-dir={self.state_dir / 'kubelet-pki'}", f"--node-ip={address}",
                                f"--hostname-override={NODE_NAME}", "--v=1"])
        self._spawn("kube-proxy", [str(bins / "kube-proxy"), f"--config={proxy_conf}", "--v=1"])
        self._spawn("kube-scheduler", [str(bins / "kube-scheduler"), f"--kubeconfig={configs['kube-scheduler']}",
                                       f"--authentication-kubeconfig={configs['kube-scheduler']}",
                                       f"--authorization-kubeconfig={configs['kube-scheduler']}",
                                       "--leader-elect=false", "--bind-address=127.0.0.1",
                                       f"--secure-port={free_port()}", "--v=1"])
        self._spawn("kube-controller-manager", [
            str(bins / "kube-controller-manager"), f"--kubeconfig={configs['kube-controller-manager']}",
            f"--authentication-kubeconfig={configs['kube-controller-manager']}",
            f"--authorization-kubeconfig={configs['kube-controller-manager']}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            # Each controller acts as its own ServiceAccount, with the bootstrap policy's roles.
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-cluster-ip-range={controlplane.SERVICE_CIDR}", "--v=1"])

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            self._check_alive()
            status, body = self.cp.get(f"/api/v1/nodes/{NODE_NAME}")
            if status == 200:
                conditions = {c["type"]: c for c in json.loads(body)["status"].get("conditions", [])}
                ready = conditions.get("Ready", {})
                last = f"Ready={ready.get('status')} ({ready.get('reason')}: {ready.get('message')})"
                if ready.get("status") == "True" and \
                        self.cp.get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"node {NODE_NAME} not Ready after {timeout:.0f}s ({last}):\n{self._tail('kubelet')}")

    # -- helpers -----------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        self._procs[name] = spawn(argv, self.state_dir / f"{name}.log",
                                  env={**os.environ, "PATH": _sbin_path()})
        self._record()

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self._tail(name)}")

    def _procs_by_pid(self) -> dict[str, int]:
        return {n: p.pid for n, p in self._procs.items() if p.poll() is None}

    def _record(self) -> None:
        record = {"state_dir": str(self.state_dir), "kubeconfig": str(self.kubeconfig),
                  "pids": {n: p.pid for n, p in self._procs.items()}, "host": self._before}
        (self.state_dir / "node.json").write_text(json.dumps(record, indent=2))
        OWNER.write_text(json.dumps({"state_dir": str(self.state_dir), "pids": record["pids"]}))

    def _tail(self, name: str) -> str:
        return tail(self.state_dir / f"{name}.log")


def _delete_pods(kubeconfig: Path) -> None:
    """Delete every pod at once (no grace: the cluster is going away), so the kubelet stops their
    sandboxes through the CNI (each pod's address and iptables rules released)."""
    subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "delete", "pods", "--all", "--all-namespaces",
                    "--grace-period=0", "--force", "--wait=false", "--request-timeout=10s"],
                   capture_output=True, text=True, timeout=30)


def _ctr_ids(socket_path: Path, *what: str) -> list[str]:
    proc = subprocess.run(["ctr", "--address", str(socket_path), "--namespace", "k8s.io", *what, "ls", "-q"],
                          capture_output=True, text=True, timeout=30)
    return proc.stdout.split() if proc.returncode == 0 else []


def stop_node(state_dir: Path, pids: dict[str, int], before: dict | None, kubeconfig: Path | None, log=print) -> None:
    """Stop a node's components by ``pids`` and undo its host changes (``before``): the controllers
    first (nothing is recreated), every pod deleted while the kubelet still runs, the kubelet and
    kube-proxy, every container left killed and deleted through containerd by id (their shims
    exit), containerd, then :func:`undo_host`."""
    for name in ("kube-controller-manager", "kube-scheduler"):
        if name in pids:
            terminate(pids[name], 10.0)
    socket_path = Path(state_dir) / "containerd" / "containerd.sock"
    if kubeconfig is not None and "kubelet" in pids and alive(pids["kubelet"]):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _delete_pods(kubeconfig)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _ctr_ids(socket_path, "tasks"):
                time.sleep(0.5)
    for name in ("kubelet", "kube-proxy"):
        if name in pids:
            terminate(pids[name], 10.0)
    if "containerd" in pids and alive(pids["containerd"]):
        for task in _ctr_ids(socket_path, "tasks"):
            ctr = ["ctr", "--address", str(socket_path), "--namespace", "k8s.io", "tasks"]
            subprocess.run([*ctr, "kill", "--all", "--signal", "SIGKILL", task], capture_output=True, timeout=30)
            subprocess.run([*ctr, "delete", "--force", task], capture_output=True, timeout=30)
        for container in _ctr_ids(socket_path, "containers"):
            subprocess.run(["ctr", "--address", str(socket_path), "--namespace", "k8s.io", "containers", "delete",
                            container], capture_output=True, timeout=30)
        terminate(pids["containerd"], 15.0)
    if before is not None:
        undo_host(before, Path(state_dir), log)
    owner = running_owner()
    if owner is None or owner.get("state_dir") == str(state_dir):
        OWNER.unlink(missing_ok=True)
    (Path(state_dir) / "node.json").unlink(missing_ok=True)  # undone: nothing left to stop


def stop_recorded(state_dir: Path, log=print) -> bool:
    """Stop a node started by another process, from ``state_dir/node.json``. False if none."""
    record_path = Path(state_dir) / "node.json"
    if not record_path.exists():
        return False
    record = json.loads(record_path.read_text())
    stop_node(Path(record["state_dir"]), record["pids"], record["host"], Path(record["kubeconfig"]), log)
    return True
