"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, the server
listening on a Unix socket there alone (no TCP port to collide on).

The binaries come from PATH or from the Debian package's folder
(`/usr/lib/postgresql/<version>/bin`, newest first); `make system-deps` installs
them. PostgreSQL refuses to run as root, so under root initdb and the server run
as the `postgres` system user (the package creates it), in a folder it owns.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO
from urllib.parse import quote

from xborder_tools.embedded_broker import log_tail, orphan_guard

__all__ = ["PostgresServer", "PostgresSetupError", "find_bin_dir"]

_DEBIAN_BINS = Path("/usr/lib/postgresql")
_USER = "xborder"  # the server's superuser, trusted on its own socket


class PostgresSetupError(RuntimeError):
    """PostgreSQL is installed but could not be started; the message says why."""


def find_bin_dir() -> Path | None:
    """The folder holding initdb and postgres; None when PostgreSQL is not installed."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).resolve().parent
    versions = sorted(
        (p for p in _DEBIAN_BINS.glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    return versions[0] if versions else None


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """Command prefix, uid and gid to run PostgreSQL with (root hands it to `postgres`).

    The prefix also kills the server when the test process dies without cleanup."""
    if os.geteuid() != 0:
        return orphan_guard(), None, None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresSetupError(
            "running as root, and there is no `postgres` user to run the server as "
            "(the postgresql package creates it)"
        ) from None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ["runuser", "-u", "postgres", "--"], user.pw_uid, user.pw_gid
    # One setpriv: a change of user clears the parent-death signal, so it is set
    # after the change, and setpriv execs the server (signals reach it).
    ids = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    return [setpriv, *ids, "--pdeathsig", "KILL", "--"], user.pw_uid, user.pw_gid


class PostgresServer:
    """One server in a temporary folder; `url(database)` to connect, `create_database()`
    for a fresh database per test."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.folder: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def socket_dir(self) -> Path:
        if self.folder is None:
            raise PostgresSetupError("PostgreSQL is not started")
        return self.folder

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{_USER}@/{database}?host={quote(str(self.socket_dir), safe='')}"

    def start(self, timeout: float = 60.0) -> None:
        prefix, uid, gid = _as_server_user()
        # Under /tmp rather than pytest's folders: those are closed to other users.
        self.folder = Path(tempfile.mkdtemp(prefix="xborder-pg-"))
        if uid is not None and gid is not None:
            os.chown(self.folder, uid, gid)
        data = self.folder / "data"
        init = subprocess.run(
            [*prefix, str(self.bin_dir / "initdb"), "-D", str(data), "-U", _USER,
             "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if init.returncode != 0:
            self.stop()
            raise PostgresSetupError(
                f"initdb failed (exit {init.returncode}):\n{(init.stdout + init.stderr)[-3000:]}"
            )
        log_path = self.folder / "postgres.log"
        self._log = log_path.open("wb")
        if uid is not None and gid is not None:
            os.chown(log_path, uid, gid)
        # A test server: nothing needs to survive a crash, so no fsync.
        self._process = subprocess.Popen(
            [*prefix, str(self.bin_dir / "postgres"), "-D", str(data),
             "-k", str(self.folder), "-c", "listen_addresses=", "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        atexit.register(self.stop)
        self._wait_ready(timeout, log_path)

    def _wait_ready(self, timeout: float, log_path: Path) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                pass
            if self._process is None or self._process.poll() is not None:
                self.stop()
                raise PostgresSetupError(f"postgres exited:\n{log_tail(log_path)}")
            if time.monotonic() > deadline:
                self.stop()
                raise PostgresSetupError(f"postgres not ready in {timeout:g} s")
            time.sleep(0.05)

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url(name)

    def stop(self, timeout: float = 30.0) -> None:
        """A fast shutdown (SIGINT: clients are disconnected), SIGKILL after `timeout`."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
