"""How every Kafka client of the monitor connects: TLS and SASL, from the XBORDER_KAFKA_* settings.

The worker (Faust over aiokafka: `agents.app.faust_credentials`), the notifier
(aiokafka), topic creation and `xborder alerts` (kafka-python) and the
simulator take their keywords from here, so one set of variables secures
them all.

A password reaches the clients as `Password`, a str whose repr is stars:
kafka-python logs its configuration dict at debug level, and a dict shows
its values by repr. It appears in no message of this module either.

`check_access` opens one connection before a client starts. Both libraries
hide why they could not connect: kafka-python retries a refused login until
its bootstrap timeout (30 s) and then reports only that it could not
bootstrap; aiokafka gives up at once with the same words, the cause in a log
line. The check names the cause instead: credentials the broker refused, a
mechanism it does not offer, a certificate that is not trusted.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any, NoReturn

from monitor.config.settings import Settings
from monitor.config.yamlfile import read_config_file
from monitor.errors import ConfigError, KafkaAccessDenied, Location

__all__ = [
    "SASL_PROTOCOLS",
    "TLS_PROTOCOLS",
    "Password",
    "aiokafka_config",
    "check_access",
    "check_access_async",
    "describe",
    "kafka_python_config",
    "sasl_password",
    "ssl_context",
]

SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
TLS_PROTOCOLS = ("SSL", "SASL_SSL")
# Long enough for a TLS handshake and a SCRAM exchange over a slow link; an
# unreachable server is left to the client, whose own timeout and message apply.
_CHECK_TIMEOUT_S = 10.0
# A TLS listener answers a request it cannot read with a TLS record (an alert,
# 0x15), whose first bytes a plain client reads as a message length.
_TLS_RECORD_TYPES = (0x15, 0x16)


class Password(str):
    """A password as the clients need it, a str, whose repr shows stars."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'**********'"


class _EncryptedKey(Exception):
    """OpenSSL asked for the key's password: there is none to give."""


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal, and a service hang.
    raise _EncryptedKey


def _file_problem(variable: str, path: Path, what: str) -> NoReturn:
    raise ConfigError(f"{variable}: {what}", Location(str(path)))


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL; None for the other protocols.

    Certificates are checked against XBORDER_KAFKA_SSL_CAFILE, else the
    system's CAs, and must name the host connected to unless
    XBORDER_KAFKA_SSL_CHECK_HOSTNAME is off.
    """
    if settings.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    cafile = settings.kafka_ssl_cafile
    if cafile is None:
        context = ssl.create_default_context()
    else:
        try:
            # Only the file's CAs are trusted then, as by a Java client's trust store.
            context = ssl.create_default_context(cafile=str(cafile))
        except ssl.SSLError:  # an OSError too: first
            _file_problem("XBORDER_KAFKA_SSL_CAFILE", cafile, "holds no PEM certificate")
        except OSError as e:
            _file_problem("XBORDER_KAFKA_SSL_CAFILE", cafile, f"cannot read it ({e.strerror})")
    context.check_hostname = settings.kafka_ssl_check_hostname
    certfile, keyfile = settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile
    if certfile is not None:
        _load_client_certificate(context, certfile, keyfile)
    return context


def _load_client_certificate(context: ssl.SSLContext, certfile: Path, keyfile: Path | None) -> None:
    key_variable = "XBORDER_KAFKA_SSL_KEYFILE" if keyfile else "XBORDER_KAFKA_SSL_CERTFILE"
    for variable, path in (("XBORDER_KAFKA_SSL_CERTFILE", certfile), (key_variable, keyfile)):
        if path is not None and not path.is_file():
            _file_problem(variable, path, "no such file")
    try:
        context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None, _no_password)
    except _EncryptedKey:
        _file_problem(
            key_variable,
            keyfile or certfile,
            "the private key is encrypted; give it unencrypted, readable by the monitor alone",
        )
    except ssl.SSLError:  # an OSError too: first
        _file_problem(
            key_variable,
            keyfile or certfile,
            "not a PEM certificate and the private key that belongs to it",
        )
    except OSError as e:
        _file_problem(key_variable, keyfile or certfile, f"cannot read it ({e.strerror})")


def sasl_password(settings: Settings) -> Password | None:
    """The SASL password, from XBORDER_KAFKA_SASL_PASSWORD or the file of ..._PASSWORD_FILE."""
    if settings.kafka_sasl_password is not None:
        return Password(settings.kafka_sasl_password.get_secret_value())
    path = settings.kafka_sasl_password_file
    if path is None:
        return None
    try:
        data = read_config_file(path, [path.parent])
    except ConfigError as e:
        raise ConfigError(f"XBORDER_KAFKA_SASL_PASSWORD_FILE: {e.message}", e.location) from None
    try:
        # A trailing newline is the editor's or `echo`'s, not the password's.
        return Password(data.rstrip(b"\r\n").decode())
    except UnicodeDecodeError:
        _file_problem("XBORDER_KAFKA_SASL_PASSWORD_FILE", path, "the password is not UTF-8 text")


def _client_config(settings: Settings) -> dict[str, Any]:
    protocol = settings.kafka_security_protocol
    config: dict[str, Any] = {"security_protocol": protocol}
    context = ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    if protocol in SASL_PROTOCOLS:
        config.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=sasl_password(settings),
        )
    return config


def kafka_python_config(settings: Settings) -> dict[str, Any]:
    """Keywords for kafka-python's KafkaAdminClient, KafkaConsumer and KafkaProducer."""
    # kafka-python takes an SSLContext whole, ignoring its own ssl_* options then.
    return _client_config(settings)


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """Keywords for aiokafka's AIOKafkaConsumer and AIOKafkaProducer."""
    # The same names as kafka-python's: aiokafka began as its port.
    return _client_config(settings)


def describe(settings: Settings | None) -> str:
    """How the clients connect, for messages: " over SASL_SSL as 'user' (SASL PLAIN)", or
    nothing for PLAINTEXT, which messages have always left unsaid. Never a secret."""
    if settings is None or settings.kafka_security_protocol == "PLAINTEXT":
        return ""
    protocol = settings.kafka_security_protocol
    if protocol not in SASL_PROTOCOLS:
        return f" over {protocol}"
    user, mechanism = settings.kafka_sasl_username, settings.kafka_sasl_mechanism
    return f" over {protocol} as {user!r} (SASL {mechanism})"


def _servers(bootstrap: str) -> list[tuple[str, int]]:
    servers = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if host and port.isdigit():
            servers.append((host.strip("[]"), int(port)))
    return servers


async def check_access_async(settings: Settings, bootstrap: str | None = None) -> None:
    """Log in to the first bootstrap server that answers and ask it for metadata, as the
    clients start; raise KafkaAccessDenied if it refuses.

    Nothing to check with PLAINTEXT. A server that cannot be reached is
    skipped: whether any can is the client's to find out and report.
    """
    if settings.kafka_security_protocol == "PLAINTEXT":
        return
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.metadata import MetadataRequest

    config = aiokafka_config(settings)
    protocol = settings.kafka_security_protocol
    for host, port in _servers(bootstrap or settings.bootstrap):
        where = f"{host}:{port}"
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host,
                    port,
                    client_id="xborder-access-check",
                    request_timeout_ms=int(_CHECK_TIMEOUT_S * 1000),
                    **config,
                ),
                _CHECK_TIMEOUT_S,
            )
        except (OSError, TimeoutError, KafkaError) as e:
            refusal = _refusal(settings, where, e)
            if refusal is None:
                continue
            raise KafkaAccessDenied(refusal) from None
        try:
            # What a client asks first; a SASL listener answers ApiVersions
            # before the login, so a client without SASL gets this far.
            await asyncio.wait_for(conn.send(MetadataRequest([])), _CHECK_TIMEOUT_S)
        except (OSError, TimeoutError, KafkaError):
            raise KafkaAccessDenied(
                f"the broker at {where} closed the connection at the first request, as a "
                "listener expecting SASL does to a client that did not log in "
                f"(XBORDER_KAFKA_SECURITY_PROTOCOL={protocol})"
            ) from None
        finally:
            conn.close()
        return


def _refusal(settings: Settings, where: str, error: BaseException) -> str | None:
    """Why the broker at `where` refused the connection; None when it could not be reached."""
    from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError

    mechanism = settings.kafka_sasl_mechanism
    # aiokafka wraps what broke a connection in KafkaConnectionError.
    cause = error.__cause__ if isinstance(error.__cause__, ssl.SSLError) else error
    if isinstance(error, SaslAuthenticationFailed):
        return (
            f"authentication failed for user {settings.kafka_sasl_username!r} (SASL {mechanism}) "
            f"at {where}{_broker_says(error)}; check XBORDER_KAFKA_SASL_USERNAME, the password "
            "and XBORDER_KAFKA_SASL_MECHANISM"
        )
    if isinstance(error, UnsupportedSaslMechanismError):
        return (
            f"the broker at {where} does not offer SASL {mechanism}{_broker_says(error)}; set "
            "XBORDER_KAFKA_SASL_MECHANISM to one it offers"
        )
    if isinstance(cause, ssl.SSLCertVerificationError):
        said = str(cause.verify_message).rstrip(".")
        hint = "XBORDER_KAFKA_SSL_CAFILE names the CA that signed it"
        if "mismatch" in said.lower():
            hint = "connect by a name it holds (KAFKA_BOOTSTRAP_SERVERS, advertised listeners)"
        return f"the TLS certificate of the broker at {where} is not trusted: {said}; {hint}"
    if isinstance(cause, ssl.SSLError):
        reason = getattr(cause, "reason", None) or type(cause).__name__
        return (
            f"TLS with the broker at {where} failed ({reason}): "
            "does it require a client certificate (XBORDER_KAFKA_SSL_CERTFILE, "
            "XBORDER_KAFKA_SSL_KEYFILE) or one another CA signed?"
        )
    short = error.__cause__
    if isinstance(short, asyncio.IncompleteReadError) and (
        (short.expected or 0) >> 24 in _TLS_RECORD_TYPES
    ):
        return (
            f"the listener at {where} speaks TLS, and XBORDER_KAFKA_SECURITY_PROTOCOL="
            f"{settings.kafka_security_protocol} does not: use SSL or SASL_SSL"
        )
    return None


def check_access(settings: Settings, bootstrap: str | None = None) -> None:
    """`check_access_async` for code without an event loop."""
    if settings.kafka_security_protocol != "PLAINTEXT":
        asyncio.run(check_access_async(settings, bootstrap))


def _broker_says(error: Exception) -> str:
    # aiokafka's errors carry the broker's own words as their first argument;
    # they name the mechanism or the user at most, never a password.
    said = str(error.args[0]).strip() if error.args else ""
    return f" (the broker says: {said})" if said else ""
