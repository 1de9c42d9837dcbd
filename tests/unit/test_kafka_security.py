"""The Kafka clients' keywords built from XBORDER_KAFKA_*, and the reasons a broker refuses.

No broker: certificates are made per test; tests/integration/test_kafka_security.py
connects with them.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
from pathlib import Path

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from cryptography.hazmat.primitives import serialization

from monitor.config.settings import Settings
from monitor.errors import ConfigError
from monitor.kafka_security import (
    Password,
    _refusal,
    aiokafka_config,
    check_access,
    describe,
    kafka_python_config,
    sasl_password,
    ssl_context,
)
from tests.support.tls import Certificates, make_certificates

PASSWORD = "a-kafka-password-nobody-may-read"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def settings(**env: str) -> Settings:
    return Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9093,kafka-2:9093", **env})


def sasl_ssl(certs: Certificates, **env: str) -> Settings:
    base = {
        "XBORDER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "XBORDER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "XBORDER_KAFKA_SASL_USERNAME": "monitor",
        "XBORDER_KAFKA_SASL_PASSWORD": PASSWORD,
        "XBORDER_KAFKA_SSL_CAFILE": str(certs.ca),
    }
    return settings(**{**base, **env})


def test_plaintext_adds_nothing() -> None:
    s = settings()
    assert kafka_python_config(s) == aiokafka_config(s) == {"security_protocol": "PLAINTEXT"}
    assert ssl_context(s) is None and sasl_password(s) is None
    assert describe(s) == describe(None) == ""


def test_sasl_ssl(certs: Certificates) -> None:
    s = sasl_ssl(certs)
    config = kafka_python_config(s)
    context = config.pop("ssl_context")
    assert config == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "monitor",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # The CA given, and only it: not the system's beside it.
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "xborder test CA"),),)
    ]
    assert aiokafka_config(s).keys() == kafka_python_config(s).keys()
    assert describe(s) == " over SASL_SSL as 'monitor' (SASL SCRAM-SHA-256)"


def test_the_password_is_shown_as_stars(certs: Certificates) -> None:
    """kafka-python logs its configuration dict at debug level: values by repr."""
    for config in (kafka_python_config(sasl_ssl(certs)), aiokafka_config(sasl_ssl(certs))):
        password = config["sasl_plain_password"]
        assert isinstance(password, Password) and password == PASSWORD
        assert PASSWORD not in repr(config) and PASSWORD not in f"{config}"
        assert password.encode() == PASSWORD.encode()  # what the clients send


def test_sasl_plaintext_has_no_tls() -> None:
    s = settings(
        XBORDER_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        XBORDER_KAFKA_SASL_USERNAME="monitor",
        XBORDER_KAFKA_SASL_PASSWORD=PASSWORD,
    )
    assert "ssl_context" not in aiokafka_config(s)
    assert aiokafka_config(s)["sasl_mechanism"] == "PLAIN"


def test_the_system_cas_without_a_cafile_and_hostnames_checked_unless_turned_off() -> None:
    s = settings(XBORDER_KAFKA_SECURITY_PROTOCOL="SSL")
    context = ssl_context(s)
    assert context is not None and context.check_hostname
    assert not {"sasl_mechanism", "sasl_plain_username"} & kafka_python_config(s).keys()
    assert describe(s) == " over SSL"
    relaxed = ssl_context(s.override({"kafka_ssl_check_hostname": False}))
    assert relaxed is not None and not relaxed.check_hostname
    assert relaxed.verify_mode == ssl.CERT_REQUIRED  # the chain is still checked


def test_a_client_certificate(certs: Certificates) -> None:
    for keyfile in (certs.client_key, None):
        certfile = certs.client_cert
        if keyfile is None:  # one file holding both
            certfile = certs.client_cert.with_name("both.pem")
            certfile.write_bytes(certs.client_key.read_bytes() + certs.client_cert.read_bytes())
        env = {"XBORDER_KAFKA_SSL_CERTFILE": str(certfile)}
        if keyfile is not None:
            env["XBORDER_KAFKA_SSL_KEYFILE"] = str(keyfile)
        assert ssl_context(settings(XBORDER_KAFKA_SECURITY_PROTOCOL="SSL", **env)) is not None


def test_an_encrypted_key_is_refused_without_a_prompt(certs: Certificates, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(certs.client_key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    s = settings(
        XBORDER_KAFKA_SECURITY_PROTOCOL="SSL",
        XBORDER_KAFKA_SSL_CERTFILE=str(certs.client_cert),
        XBORDER_KAFKA_SSL_KEYFILE=str(encrypted),
    )
    with pytest.raises(
        ConfigError, match="XBORDER_KAFKA_SSL_KEYFILE: the private key is encrypted"
    ):
        ssl_context(s)


@pytest.mark.parametrize(
    ("variable", "content", "problem"),
    [
        ("XBORDER_KAFKA_SSL_CAFILE", None, "cannot read it (No such file or directory)"),
        ("XBORDER_KAFKA_SSL_CAFILE", b"not a certificate", "holds no PEM certificate"),
        ("XBORDER_KAFKA_SSL_CERTFILE", None, "no such file"),
        ("XBORDER_KAFKA_SSL_KEYFILE", None, "no such file"),
        ("XBORDER_KAFKA_SSL_KEYFILE", b"junk", "not a PEM certificate and the private key"),
    ],
)
def test_unusable_files_are_named(
    certs: Certificates, tmp_path: Path, variable: str, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "file.pem"
    if content is not None:
        path.write_bytes(content)
    env = {
        "XBORDER_KAFKA_SSL_CERTFILE": str(certs.client_cert),
        "XBORDER_KAFKA_SSL_KEYFILE": str(certs.client_key),
        variable: str(path),
    }
    with pytest.raises(ConfigError) as err:
        ssl_context(settings(XBORDER_KAFKA_SECURITY_PROTOCOL="SSL", **env))
    assert str(err.value).startswith(f"{path}: {variable}: {problem}")


def test_the_password_from_a_file(certs: Certificates, tmp_path: Path) -> None:
    path = tmp_path / "kafka.password"
    path.write_bytes(PASSWORD.encode() + b"\n")
    s = sasl_ssl(certs, XBORDER_KAFKA_SASL_PASSWORD="", XBORDER_KAFKA_SASL_PASSWORD_FILE=str(path))
    assert sasl_password(s) == PASSWORD
    assert kafka_python_config(s)["sasl_plain_password"] == PASSWORD
    missing = s.override({"kafka_sasl_password_file": tmp_path / "missing"})
    with pytest.raises(ConfigError) as err:
        sasl_password(missing)
    assert "XBORDER_KAFKA_SASL_PASSWORD_FILE" in str(err.value)


def test_nothing_is_checked_on_plaintext(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_loop(*args: object) -> None:
        raise AssertionError("PLAINTEXT opens no connection")

    monkeypatch.setattr(asyncio, "run", no_loop)
    check_access(settings())


def _caused(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            SaslAuthenticationFailed("Authentication failed: Invalid username or password"),
            "authentication failed for user 'monitor' (SASL SCRAM-SHA-256) at kafka-1:9093 "
            "(the broker says: Authentication failed: Invalid username or password); check "
            "XBORDER_KAFKA_SASL_USERNAME, the password and XBORDER_KAFKA_SASL_MECHANISM",
        ),
        (
            UnsupportedSaslMechanismError(
                "Kafka broker does not support SCRAM-SHA-256 sasl "
                "mechanism. Enabled mechanisms are: ['PLAIN']"
            ),
            "the broker at kafka-1:9093 does not offer SASL SCRAM-SHA-256 (the broker says: "
            "Kafka broker does not support SCRAM-SHA-256 sasl mechanism. Enabled mechanisms "
            "are: ['PLAIN']); set XBORDER_KAFKA_SASL_MECHANISM to one it offers",
        ),
        (
            _caused(
                KafkaConnectionError("Connection at kafka-1:9093 closed"),
                ssl.SSLError(1, "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert"),
            ),
            "TLS with the broker at kafka-1:9093 failed (SSLError): does it require a client "
            "certificate (XBORDER_KAFKA_SSL_CERTFILE, XBORDER_KAFKA_SSL_KEYFILE) or one "
            "another CA signed?",
        ),
        (
            _caused(
                KafkaConnectionError("Connection at kafka-1:9093 closed"),
                asyncio.IncompleteReadError(b"abc", 0x15030300),
            ),
            "the listener at kafka-1:9093 speaks TLS, and XBORDER_KAFKA_SECURITY_PROTOCOL="
            "SASL_SSL does not: use SSL or SASL_SSL",
        ),
        (ConnectionRefusedError(111, "Connection refused"), None),
        (TimeoutError(), None),
        (KafkaConnectionError("Connection at kafka-1:9093 closed"), None),
    ],
)
def test_why_a_broker_refused(certs: Certificates, error: Exception, expected: str | None) -> None:
    s = sasl_ssl(certs)
    assert _refusal(s, "kafka-1:9093", error) == expected


def test_an_untrusted_certificate(certs: Certificates) -> None:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate in certificate chain"
    assert _refusal(sasl_ssl(certs), "kafka-1:9093", error) == (
        "the TLS certificate of the broker at kafka-1:9093 is not trusted: self-signed "
        "certificate in certificate chain; XBORDER_KAFKA_SSL_CAFILE names the CA that signed it"
    )
    error.verify_message = "Hostname mismatch, certificate is not valid for 'kafka-1'."
    assert _refusal(sasl_ssl(certs), "kafka-1:9093", error) == (
        "the TLS certificate of the broker at kafka-1:9093 is not trusted: Hostname mismatch, "
        "certificate is not valid for 'kafka-1'; connect by a name it holds "
        "(KAFKA_BOOTSTRAP_SERVERS, advertised listeners)"
    )


def test_what_the_check_relies_on_in_aiokafka() -> None:
    """create_conn takes our keywords and asks ApiVersions as it connects, so a broker
    refusing the client's certificate is found by the check; MetadataRequest([]) is
    what aiokafka's own bootstrap sends."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.conn import AIOKafkaConnection, create_conn

    accepted = inspect.signature(create_conn).parameters
    assert {"client_id", "request_timeout_ms", *aiokafka_config(settings())} <= accepted.keys()
    assert {"ssl_context", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password"} <= (
        accepted.keys()
    )
    assert "await self._do_version_lookup()" in inspect.getsource(AIOKafkaConnection.connect)
    assert "MetadataRequest([])" in inspect.getsource(AIOKafkaClient.bootstrap)
