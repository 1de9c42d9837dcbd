"""A one-node Apache Kafka (KRaft) for integration tests, run from Maven Central jars.

`tests/support/kafka/pom.xml` names the broker version; Maven copies its jars once into
`.cache/kafka-<version>/libs` under the repository root, and every later start
reuses them without Maven. Needs `java` (17+) always and `mvn` for the first run.

Given a `BrokerSecurity`, the broker also listens with SASL_SSL (PLAIN, SCRAM-SHA-256
and SCRAM-SHA-512) and with SSL requiring a client certificate, beside its PLAINTEXT
listener, which stays the one between broker and controller and for test set-up.
"""

from __future__ import annotations

import atexit
import base64
import fcntl
import hashlib
import shutil
import socket
import subprocess
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from tests.support.paths import ROOT
from tests.support.tls import Certificates
from xborder_tools.embedded_broker import orphan_guard, stop_process, wait_for_kafka

__all__ = [
    "ApacheKafka",
    "BrokerSecurity",
    "KafkaSetupError",
    "ensure_kafka_jars",
    "kafka_version",
]

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
REPO_ROOT = ROOT
_MAVEN_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_MARKER = "libs.complete"


class KafkaSetupError(RuntimeError):
    """Java, Maven or the broker itself is not usable; the message says why."""


def _require(tool: str, purpose: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise KafkaSetupError(
            f"`{tool}` is not on PATH; it is needed to {purpose} "
            "(install a JDK 17+ and Maven, e.g. the openjdk-17-jdk-headless and maven packages)"
        )
    return path


def kafka_version() -> str:
    """The kafka_2.13 version that tests/support/kafka/pom.xml pins."""
    root = ET.parse(POM).getroot()
    for dep in root.iterfind("m:dependencies/m:dependency", _MAVEN_NS):
        if dep.findtext("m:artifactId", namespaces=_MAVEN_NS) == "kafka_2.13":
            version = dep.findtext("m:version", namespaces=_MAVEN_NS)
            if version:
                return version.strip()
    raise KafkaSetupError(f"{POM} has no org.apache.kafka:kafka_2.13 dependency")


def ensure_kafka_jars() -> Path:
    """The folder of broker jars, copied from Maven Central unless a complete copy exists."""
    cache = REPO_ROOT / ".cache" / f"kafka-{kafka_version()}"
    libs = cache / "libs"
    marker = cache / _MARKER
    # The marker holds the pom's hash, so an edited pom (say a new logging
    # binding) refreshes the jars, and a copy cut short is never trusted.
    pom_hash = hashlib.sha256(POM.read_bytes()).hexdigest()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        # Parallel test processes would otherwise copy into the same folder.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == pom_hash:
            return libs
        mvn = _require("mvn", "fetch the Apache Kafka jars once")
        marker.unlink(missing_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
             f"-DoutputDirectory={libs}"],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if result.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
            output = (result.stdout + result.stderr).strip().splitlines()
            raise KafkaSetupError(
                f"Maven could not fetch the Kafka jars (exit {result.returncode}):\n"
                + "\n".join(output[-30:])
            )
        marker.write_text(pom_hash + "\n")
        return libs


def _free_ports(n: int) -> list[int]:
    # The sockets are held at once so the ports differ.
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class BrokerSecurity:
    """What the secured listeners accept: certificates and users.

    `plain_users` authenticate with SASL PLAIN (the broker's JAAS file lists
    them); `scram_users` with SCRAM-SHA-256 and SCRAM-SHA-512, their
    credentials written into the cluster metadata when the storage is
    formatted (`kafka-storage format --add-scram`, KRaft's only way before
    the broker answers).
    """

    certificates: Certificates
    plain_users: Mapping[str, str] = field(default_factory=dict)
    scram_users: Mapping[str, str] = field(default_factory=dict)


def _jaas_value(value: str) -> str:
    if '"' in value or "\\" in value:
        raise KafkaSetupError("test credentials must not hold quotes or backslashes")
    return f'"{value}"'


def _secured_properties(security: BrokerSecurity) -> dict[str, str]:
    certs = security.certificates
    users = " ".join(
        f"user_{name}={_jaas_value(password)}" for name, password in security.plain_users.items()
    )
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return {
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": f"{plain} {users};",
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
        # PEM files, so the test needs no keytool: the key (unencrypted PKCS#8)
        # and its chain in one file, the CA in another.
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs.broker_pem),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs.ca),
        "listener.name.ssl.ssl.client.auth": "required",
    }


def _server_properties(
    ports: list[int], data_dir: Path, security: BrokerSecurity | None = None
) -> str:
    port, controller_port = ports[:2]
    listeners = {"PLAINTEXT": port}
    if security is not None:
        listeners.update(SASL_SSL=ports[2], SSL=ports[3])
    advertised = ",".join(f"{name}://127.0.0.1:{p}" for name, p in listeners.items())
    protocols = ",".join(f"{name}:{name}" for name in listeners)
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"{advertised},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": advertised,
        "listener.security.protocol.map": f"{protocols},CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # One partition instead of 50 each: the first group join and the first
        # transaction do not wait for dozens of internal partitions.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    if security is not None:
        settings.update(_secured_properties(security))
    return "".join(f"{key}={value}\n" for key, value in settings.items())


class ApacheKafka:
    """One Apache Kafka broker+controller on free ports of 127.0.0.1.

    Two ports (PLAINTEXT, controller), and two more with `security`: SASL_SSL
    and SSL with client certificates.
    """

    def __init__(
        self,
        log_path: Path | None = None,
        heap: str = "512m",
        security: BrokerSecurity | None = None,
    ) -> None:
        self._requested_log = log_path
        self._heap = heap
        self.security = security
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._ports: list[int] = []
        self.log_path: Path | None = None

    def _address(self, index: int, listener: str) -> str:
        if not self._ports:
            raise KafkaSetupError("Apache Kafka is not started")
        if index >= len(self._ports):
            raise KafkaSetupError(f"this broker has no {listener} listener (no BrokerSecurity)")
        return f"127.0.0.1:{self._ports[index]}"

    @property
    def bootstrap(self) -> str:
        """The PLAINTEXT listener."""
        return self._address(0, "PLAINTEXT")

    @property
    def sasl_ssl_bootstrap(self) -> str:
        return self._address(2, "SASL_SSL")

    @property
    def ssl_bootstrap(self) -> str:
        """TLS with a client certificate the broker's CA signed."""
        return self._address(3, "SSL")

    def start(self, timeout: float = 120.0) -> None:
        """Format a fresh log dir, start the broker and wait until it answers Metadata."""
        if self._process is not None:
            raise KafkaSetupError("Apache Kafka is already started")
        java = _require("java", "run the Apache Kafka broker")
        classpath = f"{ensure_kafka_jars()}/*"
        self._workdir = Path(tempfile.mkdtemp(prefix="xborder-kafka-"))
        self.log_path = self._requested_log or self._workdir / "kafka.log"
        self._ports = _free_ports(2 if self.security is None else 4)
        config = self._workdir / "server.properties"
        config.write_text(_server_properties(self._ports, self._workdir / "data", self.security))
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        scram = [
            f"--add-scram={mechanism}=[name={name},password={_jaas_value(password)}]"
            for name, password in (self.security.scram_users if self.security else {}).items()
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
        ]
        # Static controller.quorum.voters, so the format needs no --standalone.
        fmt = subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "format",
             f"--cluster-id={cluster_id}", "-c", str(config), *scram],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if fmt.returncode != 0:
            self.stop()
            raise KafkaSetupError(
                f"kafka.tools.StorageTool format failed (exit {fmt.returncode}):\n"
                + (fmt.stdout + fmt.stderr)[-3000:]
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [*orphan_guard(), java, f"-Xmx{self._heap}", "-Djava.awt.headless=true",
             "-Dorg.slf4j.simpleLogger.showDateTime=true",
             "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
             "-cp", classpath, "kafka.Kafka", str(config)],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        atexit.register(self.stop)
        try:
            wait_for_kafka(self.bootstrap, timeout, self._process, self.log_path)
        except Exception as exc:
            self.stop()
            raise KafkaSetupError(f"Apache Kafka did not start: {exc}") from exc

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a controlled shutdown), SIGKILL after `timeout`; removes the data."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is not None:
            stop_process(process, timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> ApacheKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    """`python -m tests.support.kafka_apache [--sasl-ssl]`: one broker for local use, until Ctrl-C.

    With --sasl-ssl it also listens with SASL_SSL, and prints the settings
    that log in there (a SCRAM-SHA-512 user, certificates made for the run).
    """
    import argparse
    import secrets
    import signal
    import time

    from tests.support.tls import make_certificates

    parser = argparse.ArgumentParser(prog="python -m tests.support.kafka_apache")
    parser.add_argument("--sasl-ssl", action="store_true", help="add a SASL_SSL listener")
    args = parser.parse_args()
    certs_dir = Path(tempfile.mkdtemp(prefix="xborder-kafka-certs-"))
    security = None
    if args.sasl_ssl:
        user = ("xborder", secrets.token_urlsafe(16))
        security = BrokerSecurity(make_certificates(certs_dir), scram_users=dict([user]))
    try:
        with ApacheKafka(security=security) as kafka:
            print(f"Apache Kafka {kafka_version()} on {kafka.bootstrap} (log: {kafka.log_path})")
            env = f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap}"
            if security is not None:
                (certs_dir / "password").write_text(user[1] + "\n")
                env = (
                    f"KAFKA_BOOTSTRAP_SERVERS={kafka.sasl_ssl_bootstrap} "
                    "XBORDER_KAFKA_SECURITY_PROTOCOL=SASL_SSL "
                    "XBORDER_KAFKA_SASL_MECHANISM=SCRAM-SHA-512 "
                    f"XBORDER_KAFKA_SASL_USERNAME={user[0]} "
                    f"XBORDER_KAFKA_SASL_PASSWORD_FILE={certs_dir / 'password'} "
                    f"XBORDER_KAFKA_SSL_CAFILE={security.certificates.ca}"
                )
            print(f"  {env} make demo")

            def interrupt(*_: object) -> None:
                raise KeyboardInterrupt

            signal.signal(signal.SIGTERM, interrupt)
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                print("stopping")
    finally:
        shutil.rmtree(certs_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
