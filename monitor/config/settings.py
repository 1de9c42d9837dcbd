"""Typed settings, read from the environment (XBORDER_*) and overridden by command-line flags.

`deploy/xborder.env.example` lists every setting with its default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitor.errors import ConfigError

__all__ = ["Settings", "Topics", "default_data_dir", "default_rules_dir"]


def default_rules_dir() -> Path:
    """The rule pack of this checkout (`rules/` beside the `monitor` package), else ./rules."""
    beside = Path(__file__).resolve().parents[2] / "rules"
    return beside if (beside / "pack.yaml").is_file() else Path("rules")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "xborder"


@dataclass(frozen=True)
class Topics:
    egress: str = "telemetry.egress"
    api: str = "telemetry.api"
    consent: str = "telemetry.consent"
    alerts: str = "monitor.alerts"
    dead_letters: str = "monitor.dead-letters"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.egress, self.api, self.consent)


@dataclass(frozen=True)
class Settings:
    rules_dir: Path = field(default_factory=default_rules_dir)
    disclosures: Path | None = None  # default: <rules_dir>/config/disclosures.yaml
    endpoints: Path | None = None  # default: <rules_dir>/config/endpoints.yaml
    geoip_country: Path | None = None  # default: <data_dir>/geoip/country.mmdb
    geoip_asn: Path | None = None
    use_geoip: bool = True
    home_region: str | None = None  # None: the pack's own (KR)
    data_dir: Path = field(default_factory=default_data_dir)
    # Worker
    bootstrap: str = "127.0.0.1:9092"
    app_id: str = "xborder-monitor"
    topics: Topics = field(default_factory=Topics)
    partitions: int = 4
    replication: int = 1
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9464
    state_dir: Path | None = None
    batch_size: int = 500
    batch_timeout: float = 0.01
    # The broker holds a fetch of a quiet partition this long: lower is faster
    # alerts, higher is less CPU spent polling. At half load p99 send-to-alert
    # was 276 ms at 10 ms, 1,036 ms at 50 ms; an idle worker used 16% of a core
    # at 10 ms, 7% at 50 ms.
    fetch_max_wait_ms: int = 10
    session_timeout: float = 30.0
    processing_guarantee: str = "at_least_once"
    alert_update_interval: float = 60.0  # seconds between two updates of one alert
    sweep_interval: float = 30.0  # seconds between expiry sweeps of a table partition
    state_grace: float = 86400.0  # seconds of event time state outlives its rule's horizon
    # Records stamped further ahead of the wall clock are dead-lettered: one
    # would move stream time and expire everyone's state (monitor.detect.local).
    max_clock_skew: float = 3600.0
    # The secret keying data subjects' state keys (monitor.config.subject_key): the
    # secret itself, or a file holding it. Never printed.
    subject_key: str | None = field(default=None, repr=False)
    subject_key_file: Path | None = None
    log_level: str = "info"
    # Mask subject ids and IP addresses in dead letters' raw text. Off: the
    # raw bytes are the evidence of what a platform sent, and the input
    # topics hold the same bytes under the same access (README, Dead letters).
    dead_letter_mask: bool = False

    @property
    def disclosures_path(self) -> Path:
        return self.disclosures or self.rules_dir / "config" / "disclosures.yaml"

    @property
    def endpoints_path(self) -> Path:
        return self.endpoints or self.rules_dir / "config" / "endpoints.yaml"

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
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value else None

        def path(name: str) -> Path | None:
            value = get(name)
            return Path(value) if value else None

        def number(name: str, default: float) -> float:
            value = get(name)
            if value is None:
                return default
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{name} must be a number, got {value!r}") from None

        def flag(name: str, default: bool) -> bool:
            value = get(name)
            if value is None:
                return default
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{name} must be 1 or 0 (true or false), got {value!r}")

        def integer(name: str, default: int) -> int:
            value = get(name)
            if value is None:
                return default
            try:
                return int(value)
            except ValueError:
                raise ConfigError(f"{name} must be a whole number, got {value!r}") from None

        base = cls()
        topics = Topics(
            egress=get("XBORDER_TOPIC_EGRESS") or base.topics.egress,
            api=get("XBORDER_TOPIC_API") or base.topics.api,
            consent=get("XBORDER_TOPIC_CONSENT") or base.topics.consent,
            alerts=get("XBORDER_TOPIC_ALERTS") or base.topics.alerts,
            dead_letters=get("XBORDER_TOPIC_DEAD_LETTERS") or base.topics.dead_letters,
        )
        guarantee = get("XBORDER_PROCESSING_GUARANTEE") or base.processing_guarantee
        if guarantee not in ("at_least_once", "exactly_once"):
            raise ConfigError("XBORDER_PROCESSING_GUARANTEE: at_least_once or exactly_once")
        return cls(
            rules_dir=path("XBORDER_RULES") or base.rules_dir,
            disclosures=path("XBORDER_DISCLOSURES"),
            endpoints=path("XBORDER_ENDPOINTS"),
            geoip_country=path("XBORDER_GEOIP_COUNTRY"),
            geoip_asn=path("XBORDER_GEOIP_ASN"),
            home_region=get("XBORDER_HOME_REGION"),
            data_dir=path("XBORDER_DATA_DIR") or base.data_dir,
            bootstrap=get("KAFKA_BOOTSTRAP_SERVERS") or base.bootstrap,
            app_id=get("XBORDER_APP_ID") or base.app_id,
            topics=topics,
            partitions=integer("XBORDER_PARTITIONS", base.partitions),
            replication=integer("XBORDER_REPLICATION", base.replication),
            metrics_host=get("XBORDER_METRICS_HOST") or base.metrics_host,
            metrics_port=integer("XBORDER_METRICS_PORT", base.metrics_port),
            state_dir=path("XBORDER_STATE_DIR"),
            batch_size=integer("XBORDER_BATCH_SIZE", base.batch_size),
            batch_timeout=number("XBORDER_BATCH_TIMEOUT", base.batch_timeout),
            session_timeout=number("XBORDER_SESSION_TIMEOUT", base.session_timeout),
            fetch_max_wait_ms=integer("XBORDER_FETCH_MAX_WAIT_MS", base.fetch_max_wait_ms),
            processing_guarantee=guarantee,
            alert_update_interval=number(
                "XBORDER_ALERT_UPDATE_INTERVAL", base.alert_update_interval
            ),
            sweep_interval=number("XBORDER_SWEEP_INTERVAL", base.sweep_interval),
            state_grace=number("XBORDER_STATE_GRACE", base.state_grace),
            max_clock_skew=number("XBORDER_MAX_CLOCK_SKEW", base.max_clock_skew),
            subject_key=get("XBORDER_SUBJECT_KEY"),
            subject_key_file=path("XBORDER_SUBJECT_KEY_FILE"),
            log_level=get("XBORDER_LOG_LEVEL") or base.log_level,
            dead_letter_mask=flag("XBORDER_DEAD_LETTER_MASK", base.dead_letter_mask),
        )
