"""Typed settings, read from the environment (XBORDER_*) and overridden by command-line flags.

`deploy/xborder.env.example` lists every setting with its default. Values are
checked where they are read: an invalid one is a ConfigError naming the
variable (or flag) and what it accepts, so a command stops with one line
rather than a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.config.setting_errors import config_error

__all__ = [
    "Settings",
    "Topics",
    "default_data_dir",
    "default_rules_dir",
    "env_name",
]

ENV_PREFIX = "XBORDER_"
# Names that do not follow XBORDER_<FIELD>: deployments already use them.
# None: the field has no variable (--no-geoip alone turns GeoIP off).
_ENV_NAMES: dict[str, str | None] = {
    "rules_dir": "XBORDER_RULES",
    "bootstrap": "KAFKA_BOOTSTRAP_SERVERS",
    "use_geoip": None,
}
_TOPIC_PREFIX = ENV_PREFIX + "TOPIC_"
_POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")


def default_rules_dir() -> Path:
    """The rule pack of this checkout (`rules/` beside the `monitor` package), else ./rules."""
    beside = Path(__file__).resolve().parents[2] / "rules"
    return beside if (beside / "pack.yaml").is_file() else Path("rules")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "xborder"


_KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _topic_name(name: str) -> str:
    # Kafka's rule, checked here so that a typo stops start-up rather than the first send.
    if not _KAFKA_TOPIC.fullmatch(name):
        raise ValueError("a Kafka topic name (1 to 249 letters, digits, '.', '_' or '-')")
    return name


TopicName = Annotated[str, AfterValidator(_topic_name)]

# The formats of monitor.contract.formats.FORMATS (a test keeps them equal).
InputFormat = Literal["telemetry", "ocsf", "vpc-flow", "zeek-conn"]


class Topics(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    egress: TopicName = Field("telemetry.egress", description="egress telemetry topic")
    api: TopicName = Field("telemetry.api", description="API-call telemetry topic")
    consent: TopicName = Field("telemetry.consent", description="consent telemetry topic")
    alerts: TopicName = Field("monitor.alerts", description="alerts topic")
    dead_letters: TopicName = Field("monitor.dead-letters", description="dead letters topic")
    undelivered: TopicName = Field(
        "monitor.alerts.undelivered",
        description="deliveries whose retries ran out, with their last error",
    )

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.egress, self.api, self.consent)


def env_name(loc: tuple[str, ...]) -> str | None:
    """The variable that sets the field at `loc` (("topics", "egress") for a topic)."""
    if loc[0] == "topics":
        return _TOPIC_PREFIX + loc[1].upper() if len(loc) > 1 else None
    return _ENV_NAMES.get(loc[0], ENV_PREFIX + loc[0].upper())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", allow_inf_nan=False
    )

    rules_dir: Path = Field(
        default_factory=default_rules_dir,
        description="rule pack directory (default: the bundled pack)",
    )
    disclosures: Path | None = Field(
        None, description="disclosures YAML (default: <rules>/config/disclosures.yaml)"
    )
    endpoints: Path | None = Field(
        None, description="endpoint registry YAML (default: <rules>/config/endpoints.yaml)"
    )
    services: Path | None = Field(
        None,
        description="service registry YAML, whose data flows carry "
        "(default: <rules>/config/services.yaml)",
    )
    geoip_country: Path | None = Field(
        None,
        description="MaxMind GeoIP2/GeoLite2 Country database "
        "(default: <data dir>/geoip/country.mmdb)",
    )
    geoip_asn: Path | None = Field(None, description="optional MaxMind ASN database")
    use_geoip: bool = Field(
        True, description="resolve addresses with GeoIP (off: the endpoint registry alone)"
    )
    home_region: str | None = Field(
        None, description="country whose residents' data is protected (default: the pack's, KR)"
    )
    time_zone: str | None = Field(
        None,
        description="IANA time zone whose calendar days alerts are grouped by "
        "(default: the pack's; Asia/Seoul for KR)",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="data folder (default: $XDG_DATA_HOME/xborder)",
    )
    # Worker
    bootstrap: str = Field("127.0.0.1:9092", min_length=1, description="Kafka bootstrap servers")
    app_id: str = Field(
        "xborder-monitor", min_length=1, description="consumer group / application id"
    )
    topics: Topics = Field(default_factory=Topics)
    input_formats: dict[TopicName, InputFormat] = Field(
        default_factory=dict,
        description="topics the worker also reads, of other formats: TOPIC=FORMAT,... "
        "(FORMAT: ocsf, vpc-flow, zeek-conn or telemetry)",
    )
    partitions: int = Field(4, ge=1, description="partitions of internal topics")
    replication: int = Field(1, ge=1, description="replication factor of internal topics")
    metrics_host: str = Field("0.0.0.0", description="Prometheus endpoint address")
    # 0: any free port, as tests run several workers side by side.
    metrics_port: int = Field(9464, ge=0, le=65535, description="Prometheus endpoint port")
    state_dir: Path | None = Field(
        None, description="folder for local table state (default: <data dir>/state/<app id>)"
    )
    batch_size: int = Field(500, ge=1, description="most messages taken in one batch")
    batch_timeout: float = Field(0.01, gt=0, description="seconds to wait to fill a batch")
    # The broker holds a fetch of a quiet partition this long: lower is faster
    # alerts, higher is less CPU spent polling. At half load p99 send-to-alert
    # was 276 ms at 10 ms, 1,036 ms at 50 ms; an idle worker used 16% of a core
    # at 10 ms, 7% at 50 ms. Kafka's own limit is a minute.
    fetch_max_wait_ms: int = Field(
        10, ge=0, le=60000, description="milliseconds a fetch of a quiet partition waits"
    )
    session_timeout: float = Field(
        30.0, gt=0, description="Kafka consumer-group session timeout in seconds"
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="Kafka delivery guarantee"
    )
    # How every Kafka client connects (monitor.kafka_security). No flags:
    # a command line is visible to every user of the host, and these belong
    # to the deployment, not to one run.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how Kafka clients connect: TLS (SSL), SASL, both or neither"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism"
    )
    kafka_sasl_username: str | None = Field(None, min_length=1, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, repr=False, description="SASL password")
    kafka_sasl_password_file: Path | None = Field(
        None, description="file holding the SASL password"
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA certificates (PEM) to trust for brokers (default: the system's)"
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="client certificate (PEM) for brokers that require one (mutual TLS)"
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="private key (PEM, unencrypted) of the client certificate"
    )
    kafka_ssl_check_hostname: bool = Field(
        True, description="refuse a broker whose certificate does not name the host connected to"
    )
    # 0: every update of an alert goes out.
    alert_update_interval: float = Field(
        60.0, ge=0, description="seconds between two updates of one alert"
    )
    # 0: a sweep every time a partition's records are processed.
    sweep_interval: float = Field(
        30.0, ge=0, description="seconds between expiry sweeps of a table partition"
    )
    # 0: only SIGHUP makes the worker reload (agents/reload.py).
    config_poll_interval: float = Field(
        3.0,
        ge=0,
        description="seconds between looks at the rule, configuration and GeoIP files "
        "for changes (0: on SIGHUP only)",
    )
    state_grace: float = Field(
        86400.0, ge=0, description="seconds of event time state outlives its rule's horizon"
    )
    # Records stamped further ahead of the wall clock are dead-lettered: one
    # would move stream time and expire everyone's state (monitor.detect.local).
    max_clock_skew: float = Field(
        3600.0,
        gt=0,
        description="dead-letter records stamped further ahead of the wall clock, in seconds",
    )
    # The secret keying data subjects' state keys (monitor.config.subject_key):
    # the secret itself, or a file holding it.
    subject_key: SecretStr | None = Field(
        None, repr=False, description="secret keying data subjects' state"
    )
    subject_key_file: Path | None = Field(None, description="file holding the subject key")
    # Delivery of alerts to receivers (monitor.delivery)
    delivery_config: Path | None = Field(
        None, description="receivers and routes YAML (default: <rules>/config/delivery.yaml)"
    )
    delivery_history: Path | None = Field(
        None,
        description="SQLite file of the delivery history (default: <data dir>/deliveries.sqlite3)",
    )
    # A URL may carry a password: kept secret, and without a flag (a command
    # line is visible to every user of the host).
    delivery_history_url: SecretStr | None = Field(
        None,
        repr=False,
        description="PostgreSQL URL of the delivery history, used instead of the SQLite file",
    )
    alert_link: str | None = Field(
        None,
        description="link sent with each delivered alert, {alert_id} replaced "
        "(a case system's or dashboard's page)",
    )
    notify_metrics_port: int = Field(
        9465, ge=0, le=65535, description="Prometheus endpoint port of `xborder notify`"
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="log level"
    )
    # Mask subject ids and IP addresses in dead letters' raw text. Off: the
    # raw bytes are the evidence of what a platform sent, and the input
    # topics hold the same bytes under the same access (README, Dead letters).
    dead_letter_mask: bool = Field(
        False, description="write dead letters with subject ids and IP addresses masked as ***"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Settings:
        # Credentials or certificates the protocol would not use are refused:
        # ignoring them would leave a deployment connecting in the clear
        # while its operator believes it secured.
        protocol = self.kafka_security_protocol
        named = f"XBORDER_KAFKA_SECURITY_PROTOCOL={protocol}"
        sasl = {
            "XBORDER_KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "XBORDER_KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
            "XBORDER_KAFKA_SASL_PASSWORD_FILE": self.kafka_sasl_password_file,
        }
        tls = {
            "XBORDER_KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "XBORDER_KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
            "XBORDER_KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile,
        }
        if protocol.startswith("SASL_"):
            if self.kafka_sasl_username is None:
                raise ValueError(f"{named} needs XBORDER_KAFKA_SASL_USERNAME")
            if (self.kafka_sasl_password is None) == (self.kafka_sasl_password_file is None):
                raise ValueError(
                    f"{named} needs one of XBORDER_KAFKA_SASL_PASSWORD and "
                    "XBORDER_KAFKA_SASL_PASSWORD_FILE"
                )
        else:
            unused = [name for name, value in sasl.items() if value is not None]
            if unused:
                raise ValueError(
                    f"{', '.join(unused)} set, but {named} uses no SASL "
                    "(SASL_SSL or SASL_PLAINTEXT would)"
                )
        if not protocol.endswith("SSL"):
            unused = [name for name, value in tls.items() if value is not None]
            if unused:
                raise ValueError(
                    f"{', '.join(unused)} set, but {named} uses no TLS (SSL or SASL_SSL would)"
                )
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            raise ValueError(
                "XBORDER_KAFKA_SSL_KEYFILE needs XBORDER_KAFKA_SSL_CERTFILE, the certificate it "
                "belongs to"
            )
        return self

    @field_validator("input_formats", mode="before")
    @classmethod
    def _topic_format_pairs(cls, value: object) -> object:
        # A variable holds text: `flows.vpc=vpc-flow,flows.zeek=zeek-conn`.
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            topic, sep, fmt = (t.strip() for t in part.partition("="))
            if not sep or not topic or topic in pairs:
                raise ValueError(
                    "TOPIC=FORMAT pairs separated by commas, each topic once "
                    "(FORMAT: ocsf, vpc-flow, zeek-conn or telemetry)"
                )
            pairs[topic] = fmt
        return pairs

    @field_validator("alert_link")
    @classmethod
    def _link_template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(alert_id="x")
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError("a URL naming at most {alert_id}") from e
            if not value.startswith(("http://", "https://")):
                raise ValueError("an http:// or https:// URL")
        return value

    @field_validator("delivery_history_url")
    @classmethod
    def _postgresql_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(_POSTGRESQL_SCHEMES):
            raise ValueError("a postgresql:// URL")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keywords alone: from_env reads the environment, from a mapping its
        # caller chooses, so Settings() is the same in every shell and test.
        return (init_settings,)

    @property
    def input_topics(self) -> tuple[str, ...]:
        """Every topic the worker reads: the telemetry topics, then those of other formats."""
        inputs = self.topics.inputs
        return (*inputs, *(t for t in self.input_formats if t not in inputs))

    @property
    def state_path(self) -> Path:
        # Not Faust's default (<app id>-data in the working directory): a
        # worker started in a checkout would leave a folder there each run.
        return self.state_dir or self.data_dir / "state" / self.app_id

    @property
    def disclosures_path(self) -> Path:
        return self.disclosures or self.rules_dir / "config" / "disclosures.yaml"

    @property
    def endpoints_path(self) -> Path:
        return self.endpoints or self.rules_dir / "config" / "endpoints.yaml"

    @property
    def services_path(self) -> Path:
        return self.services or self.rules_dir / "config" / "services.yaml"

    @property
    def delivery_config_path(self) -> Path:
        return self.delivery_config or self.rules_dir / "config" / "delivery.yaml"

    @property
    def delivery_history_path(self) -> Path:
        return self.delivery_history or self.data_dir / "deliveries.sqlite3"

    @property
    def geoip_country_path(self) -> Path:
        return self.geoip_country or self.data_dir / "geoip" / "country.mmdb"

    @property
    def geoip_asn_path(self) -> Path | None:
        if self.geoip_asn is not None:
            return self.geoip_asn
        bundled = self.data_dir / "geoip" / "asn.mmdb"
        return bundled if self.geoip_country is None and bundled.is_file() else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `env` (default: os.environ); an empty variable counts as unset."""
        values = _EnvSource(cls, os.environ if env is None else env)()
        return cls._validated(values, lambda loc: env_name(loc) or ".".join(loc))

    def override(
        self, changes: Mapping[str, object], names: Mapping[str, str] | None = None
    ) -> Settings:
        """A copy with `changes` validated; an invalid one is named as `names` says (a flag)."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        named = names or {}
        return self._validated(
            {**values, **changes}, lambda loc: named.get(loc[0]) or ".".join(loc)
        )

    @classmethod
    def _validated(
        cls, values: dict[str, Any], name_of: Callable[[tuple[str, ...]], str]
    ) -> Settings:
        try:
            return cls(**values)
        except ValidationError as e:
            raise config_error(e, name_of, cls) from None


class _EnvSource(PydanticBaseSettingsSource):
    """Each setting's variable, asked for by name, in a mapping the caller chooses."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.env = env

    def _get(self, name: str) -> str | None:
        return self.env.get(name) or None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name == "topics":
            topics = {
                sub: value
                for sub in Topics.model_fields
                if (value := self._get(_TOPIC_PREFIX + sub.upper())) is not None
            }
            return topics or None, _TOPIC_PREFIX + "*", True
        name = env_name((field_name,))
        value = self._get(name) if name else None
        # Wrapped at once, so a debug log of what sources read shows no secret.
        if value is not None and SecretStr in get_args(field.annotation):
            return SecretStr(value), name or field_name, False
        return value, name or field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[field_name] = value
        return values
