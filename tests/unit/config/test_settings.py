"""Settings: read from the environment by name, validated, overridden by flags from one table."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from monitor.cli.flags import (
    CONFIG,
    DELIVERIES,
    FLAGS,
    NOTIFY,
    REPLAY,
    RULES_CHECK,
    WORKER,
    settings_from,
)
from monitor.cli.main import build_parser, main
from monitor.config.settings import InputFormat, Settings, Topics
from monitor.config.subject_key import derive, subject_key
from monitor.contract.formats import FORMATS
from monitor.errors import ConfigError

SECRET = "a-subject-key-nobody-may-read"

# Every variable the README and deploy/xborder.env.example name.
VARIABLES = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "XBORDER_RULES",
    "XBORDER_DISCLOSURES",
    "XBORDER_ENDPOINTS",
    "XBORDER_SERVICES",
    "XBORDER_GEOIP_COUNTRY",
    "XBORDER_GEOIP_ASN",
    "XBORDER_HOME_REGION",
    "XBORDER_TIME_ZONE",
    "XBORDER_DATA_DIR",
    "XBORDER_APP_ID",
    "XBORDER_TOPIC_EGRESS",
    "XBORDER_TOPIC_API",
    "XBORDER_TOPIC_CONSENT",
    "XBORDER_TOPIC_ALERTS",
    "XBORDER_TOPIC_DEAD_LETTERS",
    "XBORDER_INPUT_FORMATS",
    "XBORDER_PARTITIONS",
    "XBORDER_REPLICATION",
    "XBORDER_PROCESSING_GUARANTEE",
    "XBORDER_METRICS_HOST",
    "XBORDER_METRICS_PORT",
    "XBORDER_STATE_DIR",
    "XBORDER_BATCH_SIZE",
    "XBORDER_FETCH_MAX_WAIT_MS",
    "XBORDER_LOG_LEVEL",
    "XBORDER_DEAD_LETTER_MASK",
    "XBORDER_BATCH_TIMEOUT",
    "XBORDER_SESSION_TIMEOUT",
    "XBORDER_ALERT_UPDATE_INTERVAL",
    "XBORDER_SWEEP_INTERVAL",
    "XBORDER_CONFIG_POLL_INTERVAL",
    "XBORDER_STATE_GRACE",
    "XBORDER_MAX_CLOCK_SKEW",
    "XBORDER_SUBJECT_KEY_FILE",
    "XBORDER_SUBJECT_KEY",
    "XBORDER_DELIVERY_CONFIG",
    "XBORDER_DELIVERY_HISTORY",
    "XBORDER_DELIVERY_HISTORY_URL",
    "XBORDER_TOPIC_UNDELIVERED",
    "XBORDER_ALERT_LINK",
    "XBORDER_NOTIFY_METRICS_PORT",
    "XBORDER_KAFKA_SECURITY_PROTOCOL",
    "XBORDER_KAFKA_SASL_MECHANISM",
    "XBORDER_KAFKA_SASL_USERNAME",
    "XBORDER_KAFKA_SASL_PASSWORD",
    "XBORDER_KAFKA_SASL_PASSWORD_FILE",
    "XBORDER_KAFKA_SSL_CAFILE",
    "XBORDER_KAFKA_SSL_CERTFILE",
    "XBORDER_KAFKA_SSL_KEYFILE",
    "XBORDER_KAFKA_SSL_CHECK_HOSTNAME",
}


class Asked(dict[str, str]):
    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


# --- the environment -----------------------------------------------------------------


def test_every_variable_is_asked_for_by_name() -> None:
    env = Asked()
    Settings.from_env(env)
    assert env.asked == VARIABLES


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.bootstrap, s.app_id, s.partitions, s.replication) == (
        "127.0.0.1:9092",
        "xborder-monitor",
        4,
        1,
    )
    assert (s.metrics_host, s.metrics_port, s.batch_size, s.fetch_max_wait_ms) == (
        "0.0.0.0",
        9464,
        500,
        10,
    )
    assert s.processing_guarantee == "at_least_once" and s.log_level == "info"
    assert (s.max_clock_skew, s.state_grace, s.session_timeout) == (3600.0, 86400.0, 30.0)
    assert s.topics == Topics() and s.topics.inputs == (
        "telemetry.egress",
        "telemetry.api",
        "telemetry.consent",
    )
    assert s.use_geoip and not s.dead_letter_mask
    assert s.subject_key is None and s.home_region is None
    assert s.disclosures_path == s.rules_dir / "config" / "disclosures.yaml"
    assert s.services_path == s.rules_dir / "config" / "services.yaml"
    assert s.geoip_country_path == s.data_dir / "geoip" / "country.mmdb"


def test_each_kind_of_variable() -> None:
    s = Settings.from_env(
        {
            "XBORDER_RULES": "/packs/one",
            "XBORDER_ENDPOINTS": "/etc/endpoints.yaml",
            "XBORDER_SERVICES": "/etc/services.yaml",
            "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092",
            "XBORDER_PARTITIONS": "12",
            "XBORDER_BATCH_TIMEOUT": "0.25",
            "XBORDER_DEAD_LETTER_MASK": "yes",
            "XBORDER_PROCESSING_GUARANTEE": "exactly_once",
            "XBORDER_LOG_LEVEL": "WARNING",
            "XBORDER_HOME_REGION": "JP",
            "XBORDER_TOPIC_DEAD_LETTERS": "dlq",
            "XBORDER_TOPIC_API": "api.v2",
        }
    )
    assert s.rules_dir == Path("/packs/one")
    assert s.disclosures_path == Path("/packs/one/config/disclosures.yaml")
    assert s.endpoints_path == Path("/etc/endpoints.yaml")
    assert s.services_path == Path("/etc/services.yaml")
    assert s.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert s.partitions == 12 and s.batch_timeout == 0.25
    assert s.dead_letter_mask is True
    assert s.processing_guarantee == "exactly_once"
    assert s.log_level == "warning"
    assert s.home_region == "JP"
    assert s.topics == Topics(dead_letters="dlq", api="api.v2")


def test_an_empty_variable_counts_as_unset() -> None:
    empty = dict.fromkeys(VARIABLES, "")
    assert Settings.from_env(empty) == Settings.from_env({})


def test_read_from_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XBORDER_APP_ID", "from-os-environ")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:9092")
    s = Settings.from_env()
    assert (s.app_id, s.bootstrap) == ("from-os-environ", "elsewhere:9092")
    assert Settings().app_id == "xborder-monitor"  # built from keywords alone


# --- what is refused ---------------------------------------------------------------

REFUSED = [
    ("XBORDER_PARTITIONS", "0", "a whole number of at least 1"),
    ("XBORDER_PARTITIONS", "four", "a whole number of at least 1"),
    ("XBORDER_REPLICATION", "0", "a whole number of at least 1"),
    ("XBORDER_METRICS_PORT", "65536", "a whole number from 0 to 65535"),
    ("XBORDER_METRICS_PORT", "-1", "a whole number from 0 to 65535"),
    ("XBORDER_BATCH_SIZE", "0", "a whole number of at least 1"),
    ("XBORDER_FETCH_MAX_WAIT_MS", "60001", "a whole number from 0 to 60000"),
    ("XBORDER_BATCH_TIMEOUT", "0", "a number above 0"),
    ("XBORDER_SESSION_TIMEOUT", "-3", "a number above 0"),
    ("XBORDER_ALERT_UPDATE_INTERVAL", "-1", "a number of at least 0"),
    ("XBORDER_SWEEP_INTERVAL", "-0.5", "a number of at least 0"),
    ("XBORDER_STATE_GRACE", "-1", "a number of at least 0"),
    ("XBORDER_MAX_CLOCK_SKEW", "0", "a number above 0"),
    ("XBORDER_MAX_CLOCK_SKEW", "inf", "a number above 0"),
    ("XBORDER_MAX_CLOCK_SKEW", "nan", "a number above 0"),
    ("XBORDER_PROCESSING_GUARANTEE", "maybe", "one of at_least_once, exactly_once"),
    ("XBORDER_LOG_LEVEL", "verbose", "one of debug, info, warning, error, critical"),
    ("XBORDER_DEAD_LETTER_MASK", "maybe", "1 or 0 (true or false)"),
    (
        "XBORDER_KAFKA_SECURITY_PROTOCOL",
        "TLS",
        "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
    ),
    ("XBORDER_KAFKA_SASL_MECHANISM", "GSSAPI", "one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ("XBORDER_KAFKA_SSL_CHECK_HOSTNAME", "maybe", "1 or 0 (true or false)"),
    (
        "XBORDER_TOPIC_ALERTS",
        "my alerts",
        "a Kafka topic name (1 to 249 letters, digits, '.', '_' or '-')",
    ),
]


@pytest.mark.parametrize(("name", "value", "accepted"), REFUSED)
def test_an_invalid_variable_is_named_with_what_it_accepts(
    name: str, value: str, accepted: str
) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({name: value})
    assert str(err.value) == f"{name} must be {accepted}, got {value!r}"


def test_every_invalid_variable_on_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"XBORDER_PARTITIONS": "0", "XBORDER_LOG_LEVEL": "loud"})
    message = str(err.value)
    assert "\n" not in message
    assert "XBORDER_PARTITIONS" in message and "XBORDER_LOG_LEVEL" in message


@pytest.mark.parametrize(
    "values",
    [
        {"partitions": 0},
        {"log_level": "verbose"},
        {"processing_guarantee": "maybe"},
        {"metrics_port": 70000},
        {"max_clock_skew": math.inf},
        {"topics": {"egress": ""}},
        {"no_such_setting": 1},
    ],
)
def test_direct_construction_is_validated(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(**values)


def test_settings_are_immutable() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.partitions = 8  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.topics.egress = "elsewhere"  # type: ignore[misc]


def test_override_validates_and_names_what_it_was_told() -> None:
    s = Settings().override({"partitions": "8", "use_geoip": False})
    assert s.partitions == 8 and s.use_geoip is False
    with pytest.raises(ConfigError, match=r"^--partitions must be a whole number of at least 1"):
        Settings().override({"partitions": 0}, {"partitions": "--partitions"})
    with pytest.raises(ConfigError, match=r"^partitions must be"):
        Settings().override({"partitions": 0})


# --- the subject key -----------------------------------------------------------------


def test_the_subject_key_is_never_printed() -> None:
    s = Settings.from_env({"XBORDER_SUBJECT_KEY": SECRET})
    shown = [repr(s), str(s), repr(s.model_dump()), str(s.model_dump()), s.model_dump_json()]
    assert not [text for text in shown if SECRET in text]
    assert subject_key(s) == derive(SECRET.encode())
    assert Settings(subject_key=SECRET) == s


def test_an_error_beside_the_subject_key_does_not_show_it() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"XBORDER_SUBJECT_KEY": SECRET, "XBORDER_PARTITIONS": "0"})
    assert SECRET not in str(err.value) and SECRET not in repr(err.value)
    with pytest.raises(ConfigError) as err:
        Settings().override({"subject_key": 1234567890123456789})
    assert "1234567890123456789" not in str(err.value)
    assert str(err.value).startswith("subject_key")


# --- the command line ----------------------------------------------------------------

# The flags of each command before they came from the table: none lost, none added.
COMMANDS = {
    ("rules", "check"): set(RULES_CHECK),
    ("rules", "test"): set(CONFIG),
    ("replay", "in.jsonl"): set(REPLAY),
    ("worker",): set(WORKER),
    ("deliveries", "list"): set(DELIVERIES),
    ("deliveries", "retry"): set(NOTIFY),
    ("notify",): set(NOTIFY),
}
CONFIG_FLAGS = {
    "--rules",
    "--disclosures",
    "--endpoints",
    "--services",
    "--geoip-country",
    "--geoip-asn",
    "--no-geoip",
    "--home-region",
    "--time-zone",
}


def subparser(command: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in command:
        actions = [a for a in parser._actions if isinstance(a.choices, dict) and word in a.choices]
        if not actions:
            break
        parser = actions[0].choices[word]  # type: ignore[index]
    return parser


def options_of(command: tuple[str, ...]) -> set[str]:
    return {o for a in subparser(command)._actions for o in a.option_strings}


def test_the_table_names_fields_and_every_flag_is_on_its_commands() -> None:
    assert set(FLAGS) <= set(Settings.model_fields)
    assert set(WORKER) | set(RULES_CHECK) | set(DELIVERIES) | set(NOTIFY) == set(FLAGS)
    assert {FLAGS[f].option for f in CONFIG} == CONFIG_FLAGS
    assert {FLAGS[f].option for f in RULES_CHECK} == CONFIG_FLAGS | {"--delivery-config"}
    assert {FLAGS[f].option for f in DELIVERIES} == {"--delivery-history"}
    assert {FLAGS[f].option for f in REPLAY} == CONFIG_FLAGS | {
        "--max-clock-skew",
        "--mask-dead-letters",
    }
    assert {FLAGS[f].option for f in WORKER} - {FLAGS[f].option for f in REPLAY} == {
        "--bootstrap-servers",
        "--metrics-port",
        "--app-id",
        "--partitions",
        "--state-dir",
        "--processing-guarantee",
        "--input-formats",
    }
    for command, fields in COMMANDS.items():
        options = options_of(command)
        for name in FLAGS:
            assert (FLAGS[name].option in options) == (name in fields), (command, name)
    assert "--no-mask-dead-letters" in options_of(("worker",))


def test_help_comes_from_the_field_and_names_the_variable() -> None:
    help_text = " ".join(subparser(("worker",)).format_help().split())
    assert "partitions of internal topics [XBORDER_PARTITIONS, default 4]" in help_text
    assert "[KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092]" in help_text
    assert "[XBORDER_DEAD_LETTER_MASK, default off]" in help_text
    assert "resolve with the endpoint registry alone" in help_text


def test_every_flag_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XBORDER_PARTITIONS", "3")
    monkeypatch.setenv("XBORDER_DEAD_LETTER_MASK", "1")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:9092")
    parse = build_parser().parse_args
    assert settings_from(parse(["worker"])).partitions == 3
    args = parse(
        [
            "worker",
            *("--rules", "/r", "--disclosures", "/d.yaml", "--endpoints", "/e.yaml"),
            *("--services", "/sv.yaml"),
            *("--geoip-country", "/c.mmdb", "--geoip-asn", "/a.mmdb", "--no-geoip"),
            *("--home-region", "JP", "--time-zone", "Asia/Tokyo"),
            *("--max-clock-skew", "60", "--no-mask-dead-letters"),
            *("--bootstrap-servers", "flag:9092", "--metrics-port", "0", "--app-id", "x"),
            *("--partitions", "5", "--state-dir", "/s", "--processing-guarantee", "exactly_once"),
            *("--input-formats", "flows.vpc=vpc-flow"),
        ]
    )
    s = settings_from(args)
    expected = {
        "rules_dir": Path("/r"),
        "disclosures": Path("/d.yaml"),
        "endpoints": Path("/e.yaml"),
        "services": Path("/sv.yaml"),
        "geoip_country": Path("/c.mmdb"),
        "geoip_asn": Path("/a.mmdb"),
        "use_geoip": False,
        "home_region": "JP",
        "time_zone": "Asia/Tokyo",
        "max_clock_skew": 60.0,
        "dead_letter_mask": False,
        "bootstrap": "flag:9092",
        "metrics_port": 0,
        "app_id": "x",
        "partitions": 5,
        "state_dir": Path("/s"),
        "processing_guarantee": "exactly_once",
        "input_formats": {"flows.vpc": "vpc-flow"},
    }
    assert {name: getattr(s, name) for name in expected} == expected
    checked = settings_from(parse(["rules", "check", "--delivery-config", "/dc.yaml"]))
    assert checked.delivery_config == Path("/dc.yaml")
    listed = settings_from(parse(["deliveries", "list", "--delivery-history", "/h.db"]))
    assert listed.delivery_history == Path("/h.db")
    notify = settings_from(
        parse(
            ["notify", "--alert-link", "https://c.example/{alert_id}", "--notify-metrics-port", "0"]
        )
    )
    assert (notify.alert_link, notify.notify_metrics_port) == ("https://c.example/{alert_id}", 0)
    assert set(expected) | {
        "delivery_config",
        "delivery_history",
        "alert_link",
        "notify_metrics_port",
    } == set(FLAGS)


def test_an_invalid_flag_or_variable_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", "--partitions", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "xborder: --partitions must be a whole number of at least 1, got '0'\n"
    monkeypatch.setenv("XBORDER_PROCESSING_GUARANTEE", "maybe")
    assert main(["rules", "check"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "xborder: XBORDER_PROCESSING_GUARANTEE must be one of at_least_once, exactly_once, "
        "got 'maybe'"
    ]


# --- Kafka security --------------------------------------------------------------------

KAFKA_PASSWORD = "a-kafka-password-nobody-may-read"
SASL_SSL = {
    "XBORDER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "XBORDER_KAFKA_SASL_USERNAME": "monitor",
    "XBORDER_KAFKA_SASL_PASSWORD": KAFKA_PASSWORD,
}


def test_kafka_security_defaults_to_plaintext_with_hostnames_checked() -> None:
    s = Settings.from_env({})
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("PLAINTEXT", "PLAIN")
    assert s.kafka_ssl_check_hostname is True


def test_kafka_security_variables() -> None:
    s = Settings.from_env(
        {
            **SASL_SSL,
            "XBORDER_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",  # any case
            "XBORDER_KAFKA_SASL_MECHANISM": "scram-sha-512",
            "XBORDER_KAFKA_SSL_CAFILE": "/etc/kafka/ca.pem",
            "XBORDER_KAFKA_SSL_CERTFILE": "/etc/kafka/client.pem",
            "XBORDER_KAFKA_SSL_KEYFILE": "/etc/kafka/client.key",
            "XBORDER_KAFKA_SSL_CHECK_HOSTNAME": "0",
        }
    )
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert s.kafka_sasl_username == "monitor"
    assert s.kafka_sasl_password is not None
    assert s.kafka_sasl_password.get_secret_value() == KAFKA_PASSWORD
    assert s.kafka_ssl_keyfile == Path("/etc/kafka/client.key")
    assert s.kafka_ssl_check_hostname is False


def test_the_kafka_password_is_never_printed() -> None:
    s = Settings.from_env(SASL_SSL)
    shown = [repr(s), str(s), repr(s.model_dump()), str(s.model_dump()), s.model_dump_json()]
    assert not [text for text in shown if KAFKA_PASSWORD in text]
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**SASL_SSL, "XBORDER_PARTITIONS": "0"})
    assert KAFKA_PASSWORD not in str(err.value)
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**SASL_SSL, "XBORDER_KAFKA_SASL_PASSWORD_FILE": "/p"})
    assert KAFKA_PASSWORD not in str(err.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"XBORDER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "XBORDER_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs XBORDER_KAFKA_SASL_USERNAME",
        ),
        (
            {
                "XBORDER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "XBORDER_KAFKA_SASL_USERNAME": "u",
            },
            "XBORDER_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT needs one of "
            "XBORDER_KAFKA_SASL_PASSWORD and XBORDER_KAFKA_SASL_PASSWORD_FILE",
        ),
        (
            {**SASL_SSL, "XBORDER_KAFKA_SASL_PASSWORD_FILE": "/run/secrets/kafka"},
            "XBORDER_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs one of "
            "XBORDER_KAFKA_SASL_PASSWORD and XBORDER_KAFKA_SASL_PASSWORD_FILE",
        ),
        # Credentials without a protocol to use them: refused, not ignored.
        (
            {"XBORDER_KAFKA_SASL_USERNAME": "u", "XBORDER_KAFKA_SASL_PASSWORD": "p"},
            "XBORDER_KAFKA_SASL_USERNAME, XBORDER_KAFKA_SASL_PASSWORD set, but "
            "XBORDER_KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no SASL "
            "(SASL_SSL or SASL_PLAINTEXT would)",
        ),
        (
            {
                **SASL_SSL,
                "XBORDER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "XBORDER_KAFKA_SSL_CAFILE": "/ca.pem",
            },
            "XBORDER_KAFKA_SSL_CAFILE set, but XBORDER_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT "
            "uses no TLS (SSL or SASL_SSL would)",
        ),
        (
            {"XBORDER_KAFKA_SECURITY_PROTOCOL": "SSL", "XBORDER_KAFKA_SSL_KEYFILE": "/k.pem"},
            "XBORDER_KAFKA_SSL_KEYFILE needs XBORDER_KAFKA_SSL_CERTFILE, the certificate it "
            "belongs to",
        ),
    ],
)
def test_kafka_security_settings_that_do_not_fit_together(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert str(err.value) == message


# --- topics of other formats -----------------------------------------------------------


def test_input_formats_are_topic_format_pairs_read_after_the_telemetry_topics() -> None:
    s = Settings.from_env(
        {"XBORDER_INPUT_FORMATS": " flows.vpc=vpc-flow, zeek.conn = zeek-conn,telemetry.api=ocsf,"}
    )
    assert s.input_formats == {
        "flows.vpc": "vpc-flow",
        "zeek.conn": "zeek-conn",
        "telemetry.api": "ocsf",
    }
    # A telemetry topic given another format is read in it, and subscribed once.
    assert s.input_topics == (*Topics().inputs, "flows.vpc", "zeek.conn")
    assert Settings.from_env({}).input_topics == Topics().inputs


def test_the_input_format_names_are_the_adapters() -> None:
    assert get_args(InputFormat) == FORMATS


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("flows.vpc", "TOPIC=FORMAT pairs"),
        ("=vpc-flow", "TOPIC=FORMAT pairs"),
        ("a=ocsf,a=vpc-flow", "each topic once"),
        ("flows.vpc=netflow", "should be 'telemetry', 'ocsf', 'vpc-flow' or 'zeek-conn'"),
        ("bad topic=ocsf", "must be a Kafka topic name"),
    ],
)
def test_a_bad_input_format_names_the_variable(value: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        Settings.from_env({"XBORDER_INPUT_FORMATS": value})
    assert words in str(e.value) and "XBORDER_INPUT_FORMATS" in str(e.value)


def test_local_state_goes_under_the_data_dir_by_default() -> None:
    s = Settings.from_env({"XBORDER_DATA_DIR": "/d", "XBORDER_APP_ID": "a"})
    assert s.state_path == Path("/d/state/a")
    assert Settings.from_env({"XBORDER_STATE_DIR": "/s"}).state_path == Path("/s")
