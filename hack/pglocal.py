"""A real PostgreSQL server on loopback, from the binaries the ``pgserver`` wheel ships.

The wheel (a test dependency, installed by ``make venv``) holds ``initdb`` and ``postgres``
(PostgreSQL 16); nothing is downloaded at run time. :class:`LocalPostgres` initialises a data
directory with a password-protected role, serves it on ``127.0.0.1:PORT`` (TCP only, as an RDS
endpoint is reached) and stops it by the pid it started. PostgreSQL refuses to run as root, so
under root the server runs as the unprivileged ``nobody`` and owns its data directory.

``python hack/pglocal.py --dir D --port N`` serves until SIGTERM (the demo's database).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import procs

# The wheel's binaries, found without importing pgserver (its import sets up its own server machinery).
BIN = Path(importlib.util.find_spec("pgserver").submodule_search_locations[0]) / "pginstall" / "bin"
RUN_AS_ROOT_USER = "nobody"
# The role, its password and the database every local server gets (the demo's Secrets Manager secret holds them).
USER, PASSWORD, DATABASE = "opex", "opex-local-password", "orders"


class LocalPostgres:
    """One PostgreSQL cluster in ``base/data`` serving ``database`` to ``user``/``password``.

    ``base`` defaults to a new directory in the system temp dir (it must be traversable by
    ``nobody`` when running as root, which pytest's own temp dirs are not).
    """

    def __init__(self, base: Path | None = None, port: int | None = None, user: str = USER,
                 password: str = PASSWORD, database: str = DATABASE):
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="opex-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.port = port or procs.free_port()
        self.user, self.password, self.database = user, password, database
        self.proc: subprocess.Popen | None = None
        self._owner = pwd.getpwnam(RUN_AS_ROOT_USER) if os.geteuid() == 0 else None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def _run_as(self) -> dict:
        return {"user": self._owner.pw_uid, "group": self._owner.pw_gid, "extra_groups": []} if self._owner else {}

    def init(self) -> None:
        """initdb with SCRAM passwords for TCP (as RDS asks for one); then create ``database``."""
        if (self.data / "PG_VERSION").exists():
            return
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._owner:
            for path in (self.base, pwfile):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        try:
            subprocess.run([str(BIN / "initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                            "--auth-host=scram-sha-256", "--auth-local=trust", "--encoding=UTF8", "--no-sync"],
                           check=True, capture_output=True, text=True, **self._run_as())
        except subprocess.CalledProcessError as err:
            raise RuntimeError(f"initdb failed: {err.stderr.strip()}") from err
        finally:
            pwfile.unlink(missing_ok=True)
        self.start()
        try:
            import pg8000.native

            conn = pg8000.native.Connection(self.user, host=self.host, port=self.port, password=self.password,
                                            database="postgres", timeout=10)
            conn.run(f'CREATE DATABASE "{self.database}"')
            conn.close()
        finally:
            self.stop()

    def start(self, timeout: float = 30.0) -> None:
        """Serve on 127.0.0.1:``port`` (no Unix socket); returns once it accepts connections."""
        if not (self.data / "PG_VERSION").exists():
            self.init()  # initdb, then a first start to create the database
        argv = [str(BIN / "postgres"), "-D", str(self.data), "-h", self.host, "-p", str(self.port),
                "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "max_connections=20"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, **self._run_as())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{procs.tail(self.log)}")
            if self._accepting():
                return
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not accept connections within {timeout:.0f}s:\n{procs.tail(self.log)}")

    def _accepting(self) -> bool:
        """True once the server answers the startup protocol (a bare TCP accept comes earlier)."""
        import pg8000.native

        try:
            pg8000.native.Connection(self.user, host=self.host, port=self.port, password=self.password,
                                     database="postgres", timeout=2).close()
            return True
        except (pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError):
            return False

    def stop(self) -> None:
        """Fast shutdown (SIGINT: abort sessions, checkpoint) of the server this object started."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        _wait_port_closed(self.host, self.port)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _wait_port_closed(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) != 0:
                return
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="cluster directory (created on first use)")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    pg = LocalPostgres(args.dir, args.port)
    pg.start()
    # Blocked only now (postgres must not inherit the mask): sigwait then takes them instead of the
    # default action, which would end this process and leave the server running.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    print(f"postgres serving on {pg.host}:{pg.port} (database {pg.database}, user {pg.user})", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    pg.stop()


if __name__ == "__main__":
    main()
