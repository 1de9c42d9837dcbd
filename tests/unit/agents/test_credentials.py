"""The worker's Faust credentials reach aiokafka as the notifier's keywords do."""

from __future__ import annotations

from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from agents.app import faust_credentials
from monitor.config.settings import Settings
from monitor.kafka_security import aiokafka_config
from tests.support.tls import make_certificates

PASSWORD = "a-kafka-password-nobody-may-read"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certificates(tmp_path_factory.mktemp("certs")).ca


SASL = {
    "XBORDER_KAFKA_SASL_USERNAME": "monitor",
    "XBORDER_KAFKA_SASL_PASSWORD": PASSWORD,
    "XBORDER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
}


@pytest.mark.parametrize(
    "env",
    [
        {"XBORDER_KAFKA_SECURITY_PROTOCOL": "SSL"},
        {"XBORDER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", **SASL},
        {"XBORDER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", **SASL},
    ],
    ids=["ssl", "sasl_plaintext", "sasl_ssl"],
)
def test_faust_passes_aiokafka_what_the_notifier_uses(env: dict[str, str], ca: Path) -> None:
    if env["XBORDER_KAFKA_SECURITY_PROTOCOL"].endswith("SSL"):
        env = {**env, "XBORDER_KAFKA_SSL_CAFILE": str(ca)}
    settings = Settings.from_env(env)
    credentials = faust_credentials(settings)
    assert credentials is not None and PASSWORD not in repr(credentials)
    given = credentials_to_aiokafka_auth(credentials)
    expected = aiokafka_config(settings)
    # Faust passes ssl_context=None for SASL_PLAINTEXT, which aiokafka ignores there.
    assert {k: v for k, v in given.items() if v is not None}.keys() == expected.keys()
    for key, value in expected.items():
        if key == "ssl_context":
            assert given[key].check_hostname and given[key].get_ca_certs() == value.get_ca_certs()
        else:
            assert given[key] == value, key


def test_plaintext_has_no_credentials() -> None:
    assert faust_credentials(Settings()) is None
