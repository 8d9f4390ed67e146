"""Run a real Kubernetes control plane (etcd + kube-apiserver) on loopback, as envtest does.

Without a node (hack/node.py) no kube-controller-manager, scheduler or kubelet runs, so (as with
envtest):
  * no garbage collection: objects with ownerReferences outlive their owner;
  * namespaces never finish deleting (they stay Terminating): tests use a fresh namespace each
    and leave it, the whole etcd is thrown away at the end;
  * no ServiceAccount token controller or default ServiceAccounts; no pods ever run.
The API server itself creates the ``default``, ``kube-system`` and ``kube-public`` namespaces.

Credentials: a throwaway CA signs the API server's serving certificate and an admin client
certificate (``CN=admin, O=system:masters``); the kubeconfig written next to them embeds both.

``ControlPlane(dir, address=IP)`` runs it for a node instead (REFERENCE.md, "a real node"): pods
reach the API server through the ``kubernetes`` Service, so it listens on and advertises the
node's address, its certificate names that address and the Service's IP, the ServiceAccount and
NodeRestriction admission plugins are on, kubelets are authorised by the Node authorizer, and the
API server has a client certificate for the kubelet's API (logs, exec). Node components get their
own certificates from :func:`issue_client_cert`.

Usage::

    cp = ControlPlane(Path(".local/cp"))
    cp.start()            # writes cp.kubeconfig, waits for /readyz and namespace default
    ...
    cp.stop()             # API server first, then etcd
"""
from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The Service network; its first address is the ``kubernetes`` Service's ClusterIP.
SERVICE_CIDR = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))

import kube_build
from procs import free_port, spawn, tail, terminate


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: x509.Name, key, issuer: x509.Name, issuer_key, *, ca: bool, usage=None, sans=None) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(cn: str, *orgs: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs)])


def write_pki(cert_dir: Path, addresses: tuple[str, ...] = ()) -> None:
    """Write ca.{crt,key}, apiserver.{crt,key}, admin.{crt,key} and the service-account key pair.

    The serving certificate names localhost and 127.0.0.1, plus ``addresses`` (IP addresses) and,
    when there are any, the ``kubernetes`` Service's names and ClusterIP, as pods reach it.
    """
    cert_dir.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("opex-local-ca")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    sans: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if addresses:
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in (*addresses, KUBERNETES_SERVICE_IP)]
        sans += [x509.DNSName(n) for n in ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                             "kubernetes.default.svc.cluster.local")]
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert(_name("kube-apiserver"), srv_key, ca_name, ca_key, ca=False,
                usage=[ExtendedKeyUsageOID.SERVER_AUTH], sans=sans)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "ca.crt": ca.public_bytes(serialization.Encoding.PEM),
        "ca.key": _pem_key(ca_key),
        "apiserver.crt": srv.public_bytes(serialization.Encoding.PEM),
        "apiserver.key": _pem_key(srv_key),
        "sa.key": _pem_key(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo),
    }
    for name, data in files.items():
        (cert_dir / name).write_bytes(data)
        (cert_dir / name).chmod(0o600)
    issue_client_cert(cert_dir, "admin", "admin", "system:masters")


def issue_client_cert(cert_dir: Path, name: str, cn: str, *orgs: str) -> None:
    """Write ``name.crt``/``name.key`` in ``cert_dir``: a client certificate for user ``cn`` in the
    groups ``orgs``, signed by the CA :func:`write_pki` wrote there (the API server's
    ``--client-ca-file``)."""
    ca = x509.load_pem_x509_certificate((cert_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((cert_dir / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(_name(cn, *orgs), key, ca.subject, ca_key, ca=False, usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    for suffix, data in (("crt", cert.public_bytes(serialization.Encoding.PEM)), ("key", _pem_key(key))):
        (cert_dir / f"{name}.{suffix}").write_bytes(data)
        (cert_dir / f"{name}.{suffix}").chmod(0o600)


def kubeconfig_yaml(server: str, cert_dir: Path, user: str = "admin") -> str:
    """A kubeconfig (context ``opex-local``) embedding the CA and the client certificate
    ``cert_dir/<user>.{crt,key}`` (default: the admin's)."""
    def b64(name: str) -> str:
        return base64.b64encode((cert_dir / name).read_bytes()).decode()

    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "opex-local",
        "clusters": [{"name": "opex-local", "cluster": {"server": server,
                                                        "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(f"{user}.crt"),
                                          "client-key-data": b64(f"{user}.key")}}],
        "contexts": [{"name": "opex-local", "context": {"cluster": "opex-local", "user": user,
                                                        "namespace": "default"}}],
    }
    return json.dumps(doc, indent=2)  # JSON is YAML; no PyYAML needed here


class ControlPlane:
    """etcd and kube-apiserver as child processes of this one; state under ``state_dir``.

    ``state_dir`` receives ``pki/``, ``etcd-data/``, ``*.log``, ``kubeconfig`` and
    ``controlplane.json`` (pids and URLs, so another process can stop it with :func:`stop_recorded`).
    ``address``: the node's IP address, for a control plane pods use (see the module docstring);
    None (the default) listens on loopback as envtest does.
    """

    def __init__(self, state_dir: Path, bin_dir: Path | None = None, address: str | None = None):
        self.state_dir = Path(state_dir).resolve()
        self.bin_dir = bin_dir
        self.address = address
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.server = ""
        self._procs: dict[str, subprocess.Popen] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> "ControlPlane":
        """Start etcd then kube-apiserver; return once ``/readyz`` is ok and ``default`` exists.

        Raises RuntimeError with the tail of the failing process's log when either dies or the
        API server is not ready within ``timeout`` seconds (the processes are stopped first).
        """
        bins = self.bin_dir or kube_build.ensure_binaries()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Always a new cluster, as envtest does: old objects would describe an AWS that no longer exists.
        shutil.rmtree(self.state_dir / "etcd-data", ignore_errors=True)
        pki = self.state_dir / "pki"
        write_pki(pki, (self.address,) if self.address else ())
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        address = self.address or "127.0.0.1"
        self.server = f"https://{address}:{api_port}"
        try:
            self._spawn("etcd", [
                str(bins / "etcd"), "--name=default", f"--data-dir={self.state_dir / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}", "--unsafe-no-fsync=true", "--log-level=warn",
            ])
            self._spawn("kube-apiserver", [
                str(bins / "kube-apiserver"), f"--etcd-servers={etcd_url}", f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}", f"--secure-port={api_port}",
                f"--bind-address={address}", f"--advertise-address={address}",
                f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--enable-priority-and-fairness=false", "--v=0", *self._mode_flags(pki),
            ])
            self.kubeconfig.write_text(kubeconfig_yaml(self.server, pki))
            self._record()
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 15.0) -> None:
        """Stop the API server, then etcd (SIGTERM, then SIGKILL after ``grace`` seconds)."""
        for name in ("kube-apiserver", "etcd"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                terminate(proc.pid, grace, proc)
        (self.state_dir / "controlplane.json").unlink(missing_ok=True)

    def __enter__(self) -> "ControlPlane":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------------
    def _mode_flags(self, pki: Path) -> list[str]:
        # As hardened clusters do: the chart's RBAC must then cover ownerReferences too. The chart's
        # ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1, served by default since 1.30) need
        # their admission plugin, on by default too; named here so no default can silently drop it.
        hardened = "OwnerReferencesPermissionEnforcement,ValidatingAdmissionPolicy"
        if not self.address:
            # envtest's: no controller-manager creates ServiceAccounts, so pods are never admitted.
            return ["--authorization-mode=RBAC", "--disable-admission-plugins=ServiceAccount",
                    f"--enable-admission-plugins={hardened}"]
        issue_client_cert(pki, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
        return ["--authorization-mode=Node,RBAC", f"--enable-admission-plugins=NodeRestriction,{hardened}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                "--kubelet-preferred-address-types=InternalIP"]

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._procs[name] = spawn(argv, self.state_dir / f"{name}.log")

    def _record(self) -> None:
        data = {"server": self.server, "kubeconfig": str(self.kubeconfig),
                "pids": {n: p.pid for n, p in self._procs.items()}}
        (self.state_dir / "controlplane.json").write_text(json.dumps(data, indent=2))

    def ssl_context(self) -> ssl.SSLContext:
        pki = self.state_dir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` on the API server as admin; returns (HTTP status, body)."""
        try:
            with urllib.request.urlopen(self.server + path, context=self.ssl_context(), timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self._tail(name)}")
            try:
                status, body = self.get("/readyz")
                if status == 200 and self.get("/api/v1/namespaces/default")[0] == 200:
                    return
                last = f"/readyz {status}: {body[-300:]}"
            except OSError as err:
                last = str(err)
            time.sleep(0.25)
        raise RuntimeError(f"kube-apiserver not ready after {timeout:.0f}s ({last}):\n{self._tail('kube-apiserver')}")

    def _tail(self, name: str) -> str:
        return tail(self.state_dir / f"{name}.log")


def stop_recorded(state_dir: Path, grace: float = 15.0) -> bool:
    """Stop a control plane started by another process, by the pids it recorded. False if none."""
    record = Path(state_dir) / "controlplane.json"
    if not record.exists():
        return False
    pids = json.loads(record.read_text())["pids"]
    for name in ("kube-apiserver", "etcd"):
        if name in pids:
            terminate(pids[name], grace)
    record.unlink(missing_ok=True)
    return True
