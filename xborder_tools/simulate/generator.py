"""Synthetic telemetry of several platforms: mostly lawful traffic, with injected violations.

`generate_items(cfg)` is the whole stream as tagged `SimItem`s: lawful records,
the records of injected violation *episodes* (one episode fires its rule once
it is complete), deliberately invalid records (raw bytes with the dead-letter
reason they must get) and re-sent duplicates. `generate(cfg)` is the same
stream reduced to the valid record dicts. Both are pure functions of the
config: the same seed and start give the same bytes, so a demo or a test can
be replayed exactly.

Lawful traffic is kept lawful under the default rule pack on purpose, so that
every alert a run produces traces back to an injection:

- personal data of Korean users goes abroad only to countries its platform
  disclosed (the table below mirrors rules/config/disclosures.yaml), only with
  a legal basis, never with resident registration numbers and never stored in
  a watch country;
- transfers on consent name only subjects whose consent is in force;
- the `records` a platform sends to one country in one tumbling hour stay
  under `LAWFUL_VOLUME_SHARE` of the bulk threshold;
- every personal destination resolves (GeoIP pools or registry hosts); only
  system traffic goes to private addresses or unknown hosts.

`xborder simulate` writes the stream to a JSON Lines file or to Kafka.
Subject ids and IP addresses are never printed: the summary holds counts only.
"""

from __future__ import annotations

import argparse
import heapq
import ipaddress
import random
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, TypeVar

import orjson

if TYPE_CHECKING:
    from kafka import KafkaProducer

__all__ = [
    "ALSO_FIRES",
    "BUILTIN_NETWORKS",
    "DISCLOSED",
    "INVALID_REASONS",
    "POOL_COUNTRIES",
    "RULE_OF",
    "VIOLATIONS",
    "FileSink",
    "KafkaSink",
    "SimConfig",
    "SimItem",
    "SimStats",
    "generate",
    "generate_items",
    "networks_from_geoip",
    "register",
]

# --- what can be injected, and what it must fire ------------------------------

VIOLATIONS: Final = (
    "no_legal_basis",
    "undisclosed_destination",
    "stored_in_watch_country",
    "onward_transfer",
    "consent_withdrawn",
    "national_id_abroad",
    "bulk_volume",
    "unresolved_destination",
)

RULE_OF: Final[Mapping[str, str]] = {
    "no_legal_basis": "pipa.xborder.no_legal_basis",
    "undisclosed_destination": "pipa.xborder.undisclosed_destination",
    "stored_in_watch_country": "pipa.xborder.stored_in_watch_country",
    "onward_transfer": "pipa.xborder.onward_transfer",
    "consent_withdrawn": "pipa.xborder.consent_withdrawn",
    "national_id_abroad": "pipa.xborder.national_id_abroad",
    "bulk_volume": "pipa.xborder.bulk_volume",
    "unresolved_destination": "monitor.unresolved_destination",
}

# Rules an episode may fire besides its own. An onward transfer to a third
# country the platform never disclosed (AliExpress China -> Russia) is also an
# undisclosed destination, and the real cases the simulator imitates are.
ALSO_FIRES: Final[Mapping[str, frozenset[str]]] = {
    "onward_transfer": frozenset({"pipa.xborder.undisclosed_destination"}),
}

# Dead-letter reason families; missing_field / invalid_field get the field name appended.
INVALID_REASONS: Final = (
    "invalid_json",
    "not_an_object",
    "unknown_kind",
    "unsupported_version",
    "missing_field",
    "invalid_field",
)

HOME: Final = "KR"
# Share of the bulk threshold lawful traffic may fill per platform, country and window,
# so the lawful background alone never crosses it however the rates are set.
LAWFUL_VOLUME_SHARE: Final = 0.6

# --- the world the platforms live in ---------------------------------------------

# Same ranges as tests/geoip_build.py TEST_NETWORKS (a test keeps them equal), so a
# stream drawn from these pools resolves with the test databases; they are real
# allocations of the named countries, so most live databases agree.
BUILTIN_NETWORKS: Final[Mapping[str, tuple[str, ...]]] = {
    "KR": ("211.234.0.0/16", "2001:e60::/32"),
    "CN": ("47.92.0.0/14", "240e::/20"),
    "SG": ("8.219.0.0/16", "2406:da18::/32"),
    "US": ("52.0.0.0/11", "2600:1f00::/24"),
    "JP": ("13.112.0.0/14",),
    "DE": ("3.120.0.0/14",),
    "IE": ("34.240.0.0/13",),
    "HK": ("47.242.0.0/15",),
    "RU": ("5.45.192.0/18",),
    "VN": ("14.160.0.0/11",),
}
POOL_COUNTRIES: Final = tuple(BUILTIN_NETWORKS)
_CORE_COUNTRIES: Final = ("KR", "CN", "SG", "US")


@dataclass(frozen=True, slots=True)
class Disclosed:
    country: str
    recipient: str
    items: tuple[str, ...]
    purpose: str


# Mirrors rules/config/disclosures.yaml (a test keeps them equal): lawful traffic
# must stay inside what each platform declared.
DISCLOSED: Final[Mapping[str, tuple[Disclosed, ...]]] = {
    "aliexpress": (
        Disclosed(
            "CN", "Alibaba (China) Co., Ltd.", ("user.contact", "user.name"), "order fulfilment"
        ),
        Disclosed(
            "SG",
            "Alibaba.com Singapore E-Commerce Private Limited",
            ("user.contact", "user.name", "user.payment"),
            "platform operation",
        ),
    ),
    "temu": (
        Disclosed(
            "SG",
            "Whaleco Technology Ltd. (hosting)",
            ("user.contact", "user.name", "user.behavior"),
            "platform operation",
        ),
        Disclosed("US", "Whaleco Inc.", ("user.contact", "user.name"), "customer service"),
    ),
    "shein": (
        Disclosed(
            "SG",
            "Roadget Business Pte. Ltd.",
            ("user.contact", "user.name", "user.payment"),
            "platform operation",
        ),
        Disclosed("US", "Shein Distribution Corporation", ("user.contact",), "customer service"),
    ),
}

# Hosts by country and service type ("storage", "api", "stream"). In KR, CN, SG
# and US every host is one the endpoint registry (rules/config/endpoints.yaml)
# places, so calls there may omit dst_ip; the registry knows no host elsewhere,
# so calls there always carry a dst_ip for GeoIP. Only the exact
# oss-ap-southeast-1 host is SG: any other *.aliyuncs.com is CN by the registry.
_REGISTRY_COUNTRIES: Final = frozenset({"KR", "CN", "SG", "US"})
_HOSTS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "CN": {
        "storage": (
            "oss-cn-hangzhou.aliyuncs.com",
            "oss-cn-shanghai.aliyuncs.com",
            "cos.ap-shanghai.myqcloud.com",
            "tos-cn-beijing.volces.com",
        ),
        "api": ("fc.cn-hangzhou.aliyuncs.com", "apigw.cn-north-1.amazonaws.com.cn"),
        "stream": ("datahub.cn-hangzhou.aliyuncs.com", "kinesis.cn-north-1.amazonaws.com.cn"),
    },
    "SG": {
        "storage": ("oss-ap-southeast-1.aliyuncs.com", "s3.ap-southeast-1.amazonaws.com"),
        "api": (
            "k7q2m9.execute-api.ap-southeast-1.amazonaws.com",
            "sqs.ap-southeast-1.amazonaws.com",
        ),
        "stream": ("kinesis.ap-southeast-1.amazonaws.com",),
    },
    "US": {
        "storage": ("s3.us-east-1.amazonaws.com",),
        "api": ("q3n8x1.execute-api.us-east-1.amazonaws.com", "sqs.us-east-1.amazonaws.com"),
        "stream": ("kinesis.us-east-1.amazonaws.com",),
    },
    "KR": {
        "storage": ("s3.ap-northeast-2.amazonaws.com",),
        "api": (
            "p1z9w4.execute-api.ap-northeast-2.amazonaws.com",
            "sqs.ap-northeast-2.amazonaws.com",
        ),
        "stream": ("kinesis.ap-northeast-2.amazonaws.com",),
    },
    "JP": {"storage": ("s3.ap-northeast-1.amazonaws.com",), "api": ("edge-nrt.cdn.example.net",)},
    "DE": {"storage": ("s3.eu-central-1.amazonaws.com",), "api": ("edge-fra.cdn.example.net",)},
    "IE": {"storage": ("s3.eu-west-1.amazonaws.com",), "api": ("analytics-eu.example.net",)},
    "HK": {"storage": ("oss-cn-hongkong.aliyuncs.com",), "api": ("edge-hkg.cdn.example.net",)},
    "RU": {"storage": ("s3.ru-logistics.example",), "api": ("api.ru-logistics.example",)},
    "VN": {"storage": ("s3.vn-fulfilment.example",), "api": ("api.vn-fulfilment.example",)},
}
# Destinations nobody can place: the registry does not know them and they carry no dst_ip.
_UNKNOWN_HOSTS: Final = (
    "relay.partner-sync.example",
    "ingest.adnet-partner.example",
    "crm-bridge.internal.example",
)

_PLATFORM_WEIGHTS: Final[Mapping[str, float]] = {"aliexpress": 0.4, "temu": 0.35, "shein": 0.25}

# Service of each role per platform, with the timestamp form that service emits
# ("kst": RFC 3339 +09:00, "utc": RFC 3339 Z, "ms": epoch milliseconds): real
# fleets mix them, and the monitor must accept both.
_SERVICES: Final[Mapping[str, Mapping[str, tuple[str, str]]]] = {
    "aliexpress": {
        "order": ("order-center", "ms"),
        "payment": ("payment-gw", "kst"),
        "profile": ("member-profile", "ms"),
        "logistics": ("cainiao-bridge", "kst"),
        "edge": ("edge-proxy", "utc"),
        "consent": ("privacy-center", "kst"),
    },
    "temu": {
        "order": ("order-svc", "kst"),
        "payment": ("pay-svc", "kst"),
        "profile": ("user-svc", "ms"),
        "logistics": ("logistics-svc", "kst"),
        "edge": ("edge", "utc"),
        "consent": ("privacy-svc", "ms"),
    },
    "shein": {
        "order": ("oms", "ms"),
        "payment": ("payment", "kst"),
        "profile": ("member", "kst"),
        "logistics": ("wms-bridge", "ms"),
        "edge": ("edge", "utc"),
        "consent": ("privacy", "kst"),
    },
}

RRN: Final = "user.government_id.national_identification_number"


@dataclass(frozen=True, slots=True)
class _Op:
    """An API operation that carries personal data."""

    name: str
    role: str
    method: str
    categories: tuple[str, ...]  # the first one is what the call is about
    records: tuple[int, int]
    stores: bool = False
    subjects: bool = False  # names its data subjects (subject_ids)
    dataset: str | None = None

    @property
    def service(self) -> str:
        if self.stores:
            return "storage"
        return "stream" if self.name.startswith("recommendation.") else "api"


_ABROAD_OPS: Final = (
    _Op(
        "orders.export",
        "order",
        "POST",
        ("user.contact.address", "user.name", "user.contact.phone_number", "user.contact.email"),
        (20, 800),
        dataset="orders",
    ),
    _Op(
        "profile.sync",
        "profile",
        "PUT",
        ("user.name", "user.contact.email", "user.contact.phone_number"),
        (1, 1),
        subjects=True,
    ),
    _Op(
        "logistics.label.create",
        "logistics",
        "POST",
        ("user.contact.address", "user.name", "user.contact.phone_number"),
        (1, 6),
        subjects=True,
    ),
    _Op(
        "s3:PutObject",
        "order",
        "PUT",
        ("user.contact.address", "user.name", "user.contact.email"),
        (50, 400),
        stores=True,
        dataset="orders-archive",
    ),
    _Op(
        "payments.authorize",
        "payment",
        "POST",
        ("user.payment", "user.name"),
        (1, 1),
        subjects=True,
    ),
    _Op(
        "recommendation.events.ingest",
        "profile",
        "POST",
        ("user.behavior.purchase_history", "user.behavior.browsing_history"),
        (1, 40),
        subjects=True,
    ),
    _Op(
        "support.ticket.create",
        "profile",
        "POST",
        ("user.contact.email", "user.name"),
        (1, 1),
        subjects=True,
    ),
)
_DOMESTIC_OPS: Final = (
    _Op(
        "identity.verify",
        "profile",
        "POST",
        (RRN, "user.name", "user.contact.phone_number"),
        (1, 1),
    ),
    _Op("orders.create", "order", "POST", ("user.contact.address", "user.name"), (1, 1)),
    _Op(
        "delivery.dispatch",
        "logistics",
        "POST",
        ("user.contact.address", "user.name", "user.contact.phone_number"),
        (1, 30),
    ),
    _Op("payments.authorize", "payment", "POST", ("user.payment", "user.financial"), (1, 1)),
    _Op(
        "s3:PutObject",
        "order",
        "PUT",
        ("user.contact.address", "user.name", "user.device.ip_address"),
        (50, 400),
        stores=True,
        dataset="orders-archive",
    ),
    _Op(
        "customs.clearance.submit",
        "logistics",
        "POST",
        (RRN, "user.name", "user.contact.address"),
        (1, 3),
    ),
)
_SYSTEM_OPS: Final = (
    ("metrics.push", "system.operations"),
    ("logs.ship", "system.logs"),
    ("config.fetch", None),
    ("cdn.purge", None),
    ("healthcheck", None),
    ("feature_flags.get", "system.operations"),
)
# Categories other regions' users carry (their data is not the monitor's concern).
_FOREIGN_REGIONS: Final = ("JP", "US", "SG", "DE")


def _under(label: str, items: Sequence[str]) -> bool:
    return any(label == i or label.startswith(i + ".") for i in items)


# --- configuration and output items ---------------------------------------------------


def _default_rates() -> dict[str, float]:
    return {k: 1.0 for k in VIOLATIONS}


@dataclass(frozen=True)
class SimConfig:
    """Everything a run depends on; equal configs give equal streams (given `start_ms`)."""

    seed: int = 0
    count: int = 10_000  # items to produce (records, invalid ones and duplicates); 0 = forever
    start_ms: int | None = None  # event time of the first record; None = wall-clock now
    events_per_second: float = 10.0  # event-time rate at the daily peak's baseline (KST daytime)
    violation_rates: Mapping[str, float] = field(default_factory=_default_rates)  # per 1000 items
    violation_counts: Mapping[str, int] = field(default_factory=dict)  # exact episodes; count > 0
    invalid_rate: float = 2.0  # per 1000 items, spread over INVALID_REASONS
    duplicate_rate: float = 5.0  # per 1000 items
    networks: Mapping[str, Sequence[str]] | None = None  # country -> CIDRs; None: BUILTIN_NETWORKS
    ipv6_share: float = 0.15  # of addresses, where the country has IPv6 networks
    platforms: Mapping[str, float] = field(default_factory=lambda: dict(_PLATFORM_WEIGHTS))
    bulk_threshold: int = 100_000  # pack param pipa.xborder.bulk_volume at_least
    bulk_window_ms: int = 3_600_000  # and its window

    def validate(self) -> None:
        unknown = (set(self.violation_rates) | set(self.violation_counts)) - set(VIOLATIONS)
        if unknown:
            raise ValueError(f"unknown violation kinds: {sorted(unknown)}; known: {VIOLATIONS}")
        bad = set(self.platforms) - set(DISCLOSED)
        if bad or not self.platforms:
            raise ValueError(
                f"platforms must be among {sorted(DISCLOSED)}, got {sorted(self.platforms)}"
            )
        rates = [*self.violation_rates.values(), self.invalid_rate, self.duplicate_rate]
        if any(r < 0 for r in rates) or sum(rates) > 1000:
            raise ValueError("rates are per 1000 items, each >= 0 and together at most 1000")
        if self.count < 0 or self.events_per_second <= 0:
            raise ValueError("count must be >= 0 and events_per_second > 0")
        if self.violation_counts:
            if self.count == 0:
                raise ValueError("violation counts need a finite count")
            needed = sum(_MAX_EPISODE[k] * n for k, n in self.violation_counts.items())
            if needed > self.count:
                raise ValueError(
                    f"{needed} records needed by the violation counts; count is {self.count}"
                )


@dataclass(frozen=True, slots=True)
class SimItem:
    """One produced line / message value.

    label: "lawful", a violation kind (every record of that episode), "invalid"
    or "duplicate". kind: the record kind, which picks the Kafka topic (for an
    invalid item, the kind it was broken from). raw: the exact bytes to send,
    without a newline. record: the dict (None for invalid items). reason: for
    invalid items, the dead-letter reason code the monitor must give.
    episode: the injection it belongs to, numbered from 1.
    """

    label: str
    kind: str
    raw: bytes
    record: dict[str, Any] | None = None
    reason: str | None = None
    episode: int | None = None

    @property
    def valid(self) -> bool:
        return self.record is not None


# --- the generator ---------------------------------------------------------------------------

_T = TypeVar("_T")
_KST: Final = timezone(timedelta(hours=9))
# Relative event rate by KST hour: quiet nights, an evening shopping peak.
_DIURNAL: Final = (
    0.5, 0.35, 0.25, 0.2, 0.2, 0.25, 0.4, 0.6, 0.8, 0.9, 1.0, 1.0,
    1.1, 1.0, 0.95, 0.95, 1.0, 1.05, 1.1, 1.2, 1.35, 1.45, 1.4, 0.9,
)  # fmt: skip
_MAX_EPISODE: Final[Mapping[str, int]] = {
    k: {"onward_transfer": 2, "consent_withdrawn": 2, "bulk_volume": 5}.get(k, 1)
    for k in VIOLATIONS
}


@dataclass(slots=True)
class _Pool:
    v4: list[str]
    v6: list[str]


def _hosts(rng: random.Random, cidr: str, n: int) -> list[str]:
    """n distinct-ish server addresses inside a network (never its first or last address)."""
    net = ipaddress.ip_network(cidr, strict=False)
    base, size = int(net.network_address), net.num_addresses
    if size <= 2:
        return [str(net.network_address)]
    # Servers cluster in the low part of a v6 /32 in practice; and a bound keeps randrange cheap.
    span = min(size - 2, 1 << 24)
    cls = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
    return [str(cls(base + 1 + rng.randrange(span))) for _ in range(n)]


class _Sim:
    def __init__(self, cfg: SimConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        start = cfg.start_ms if cfg.start_ms is not None else int(time.time() * 1000)
        self.clock = start
        self.pools = self._pools(cfg.networks if cfg.networks is not None else BUILTIN_NETWORKS)
        self.platforms = list(cfg.platforms)
        self.platform_cum = self._cum(list(cfg.platforms.values()))
        # Consent state the lawful traffic honours: subjects whose consent is in force
        # (names for consent-based calls) and withdrawn ones (never named again).
        self.granted: dict[str, list[str]] = {p: [] for p in DISCLOSED}
        self.withdrawn: dict[str, set[str]] = {p: set() for p in DISCLOSED}
        # records sent per (platform, country, window start) by everything but bulk episodes
        self.volume: dict[tuple[str, str, int], int] = {}
        self.volume_window = 0
        self.deferred: list[tuple[int, int, SimItem]] = []  # (due ts, seq, item) heap
        self.seq = 0
        self.recent: deque[SimItem] = deque(maxlen=512)
        self.episode = 0
        rates = dict(cfg.violation_rates)
        for k in cfg.violation_counts:
            rates[k] = 0.0  # an exact count replaces that kind's rate
        self.choices: list[tuple[float, str]] = []
        acc = 0.0
        for label, rate in (
            ("invalid", cfg.invalid_rate),
            ("duplicate", cfg.duplicate_rate),
            *((k, rates.get(k, 0.0)) for k in VIOLATIONS),
        ):
            if rate > 0:
                acc += rate / 1000
                self.choices.append((acc, label))
        self.scheduled = self._schedule()

    # -- setup ----------------------------------------------------------------------------

    @staticmethod
    def _cum(weights: Sequence[float]) -> list[float]:
        out, acc = [], 0.0
        for w in weights:
            acc += w
            out.append(acc)
        return out

    def _pools(self, networks: Mapping[str, Sequence[str]]) -> dict[str, _Pool]:
        pools: dict[str, _Pool] = {}
        for country in sorted(networks):
            pool = _Pool([], [])
            for cidr in networks[country]:
                hosts = _hosts(self.rng, cidr, 24)
                (pool.v4 if ":" not in cidr else pool.v6).extend(hosts)
            if pool.v4 or pool.v6:
                pools[country] = pool
        missing = [c for c in _CORE_COUNTRIES if c not in pools]
        if missing:
            raise ValueError(f"no address networks for {', '.join(missing)}")
        return pools

    def _schedule(self) -> list[tuple[int, str]]:
        """(item index, kind) for exact counts, spread evenly with jitter, in index order."""
        out: list[tuple[int, str]] = []
        count = self.cfg.count
        for kind, n in sorted(self.cfg.violation_counts.items()):
            for i in range(n):
                slot = count * 0.9 / n
                out.append((int(slot * i + self.rng.random() * slot), kind))
        out.sort()
        return out

    # -- small draws --------------------------------------------------------------------------

    def pick(self, seq: Sequence[_T]) -> _T:
        return seq[self.rng.randrange(len(seq))]

    def platform(self) -> str:
        p: str = self.rng.choices(self.platforms, cum_weights=self.platform_cum)[0]
        return p

    def ip(self, country: str) -> str:
        pool = self.pools[country]
        if pool.v6 and (not pool.v4 or self.rng.random() < self.cfg.ipv6_share):
            return str(self.pick(pool.v6))
        return str(self.pick(pool.v4))

    def private_ip(self) -> str:
        r = self.rng
        return self.pick(
            (
                f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
                f"172.{r.randrange(16, 32)}.{r.randrange(256)}.{r.randrange(1, 255)}",
                f"192.168.{r.randrange(256)}.{r.randrange(1, 255)}",
                f"fd{r.randrange(256):02x}:{r.randrange(65536):x}::{r.randrange(1, 65536):x}",
            )
        )

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_subject(self) -> str:
        return f"u-{self.rng.getrandbits(64):016x}"

    def host(self, country: str, service: str = "api") -> str:
        hosts = _HOSTS.get(country, {})
        return self.pick(hosts.get(service) or hosts.get("api") or ("api.partner.example",))

    def countries(self, wanted: Sequence[str]) -> list[str]:
        return [c for c in wanted if c in self.pools]

    def ts(self, ms: int, form: str) -> int | str:
        if form == "ms":
            return ms
        tz = UTC if form == "utc" else _KST
        # Whole seconds plus exact milliseconds: ms / 1000 as a float can round a digit away.
        dt = datetime.fromtimestamp(ms // 1000, tz).replace(microsecond=ms % 1000 * 1000)
        text = dt.isoformat(timespec="milliseconds")
        return text.replace("+00:00", "Z")

    def next_arrival(self) -> int:
        hour = (self.clock // 3_600_000 + 9) % 24
        rate = self.cfg.events_per_second * _DIURNAL[hour]
        return self.clock + max(1, int(self.rng.expovariate(rate) * 1000))

    def head(self, kind: str, platform: str, role: str, ms: int) -> dict[str, Any]:
        service, form = _SERVICES[platform][role]
        rec: dict[str, Any] = {"kind": kind}
        if self.rng.random() < 0.3:
            rec["v"] = 1  # optional; some shippers always send it
        rec["event_id"] = self.event_id()
        rec["ts"] = self.ts(ms, form)
        rec["platform"] = platform
        rec["service"] = service
        return rec

    def take_volume(self, platform: str, country: str, ms: int, wanted: int) -> int:
        """Records this non-bulk record may carry without nearing the bulk threshold."""
        window = ms - ms % self.cfg.bulk_window_ms
        if window > self.volume_window:
            self.volume_window = window
            # Late records reach back at most one window in this generator.
            floor = window - self.cfg.bulk_window_ms
            self.volume = {k: v for k, v in self.volume.items() if k[2] >= floor}
        key = (platform, country, window)
        used = self.volume.get(key, 0)
        room = int(self.cfg.bulk_threshold * LAWFUL_VOLUME_SHARE) - used
        got = max(0, min(wanted, room))
        self.volume[key] = used + got
        return got

    def set_records(
        self, rec: dict[str, Any], platform: str, country: str, ms: int, n: int
    ) -> None:
        got = self.take_volume(platform, country, ms, n)
        if got > 0:
            rec["records"] = got

    def subjects_granted(self, platform: str, n: int) -> list[str]:
        pool = self.granted[platform]
        return [self.pick(pool) for _ in range(min(n, len(pool)))]

    # -- lawful records -------------------------------------------------------------------------

    def lawful(self, ms: int) -> dict[str, Any]:
        u = self.rng.random()
        platform = self.platform()
        if u < 0.08:
            return self.consent_change(platform, ms)
        if u < 0.38:
            return self.api_abroad(platform, ms)
        if u < 0.55:
            return self.egress_abroad(platform, ms)
        if u < 0.75:
            return self.domestic(platform, ms)
        if u < 0.95:
            return self.system(platform, ms)
        return self.foreign(platform, ms)

    def disclosure(self, platform: str) -> Disclosed:
        options = [d for d in DISCLOSED[platform] if d.country in self.pools]
        return options[self.rng.randrange(len(options))]

    def categories(self, op: _Op, items: Sequence[str] | None) -> list[str]:
        allowed = [c for c in op.categories if items is None or _under(c, items)]
        extra = [c for c in allowed[1:] if self.rng.random() < 0.5]
        return [allowed[0], *extra]

    def api_record(
        self,
        platform: str,
        ms: int,
        op: _Op,
        country: str,
        cats: list[str],
        *,
        registry_only: bool = False,
    ) -> dict[str, Any]:
        rng = self.rng
        rec = self.head("api_call", platform, op.role, ms)
        rec["operation"] = op.name
        host = self.host(country, op.service)
        if op.service == "storage":
            day = datetime.fromtimestamp(ms // 1000, _KST).strftime("%Y/%m/%d")
            path = f"/{platform}-{op.dataset or 'data'}/{day}/{rng.getrandbits(48):012x}.json.gz"
        elif op.service == "stream":
            path = "/"
        else:
            path = "/v1/" + op.name.replace(".", "/")
        rec["endpoint"] = f"https://{host}{path}"
        # Without dst_ip only the registry can place the call: only where it knows the hosts.
        if not (registry_only and country in _REGISTRY_COUNTRIES):
            rec["dst_ip"] = self.ip(country)
        if rng.random() < 0.6:
            rec["src_country"] = HOME
        else:
            rec["src_ip"] = self.ip(HOME)
        rec["method"] = op.method
        rec["status"] = rng.choices((200, 201, 204, 429, 503), cum_weights=(70, 85, 95, 98, 100))[0]
        rec["subject_region"] = HOME
        rec["data_categories"] = cats
        return rec

    def api_abroad(self, platform: str, ms: int) -> dict[str, Any]:
        rng = self.rng
        d = self.disclosure(platform)
        ops = [
            op
            for op in _ABROAD_OPS
            if _under(op.categories[0], d.items) and not (op.stores and d.country == "CN")
        ]
        op: _Op = self.pick(ops)
        use_registry = rng.random() < 0.25
        rec = self.api_record(
            platform, ms, op, d.country, self.categories(op, d.items), registry_only=use_registry
        )
        rec["recipient"] = d.recipient
        self.set_records(rec, platform, d.country, ms, rng.randint(*op.records))
        basis = rng.choices(
            ("contract", "consent", "certification", "law"), cum_weights=(55, 90, 98, 100)
        )[0]
        if op.subjects:
            if basis == "consent":
                ids = self.subjects_granted(platform, rng.randint(1, 3))
                if not ids:
                    basis = "contract"  # nobody has consented yet
                else:
                    rec["subject_ids"] = ids
            if basis != "consent":
                rec["subject_ids"] = [self.new_subject() for _ in range(rng.randint(1, 2))]
        elif basis == "consent":
            basis = "contract"  # consent is per subject; a bulk export cannot rest on it
        if op.dataset is not None:
            rec["dataset_id"] = self.dataset(platform, op.dataset, ms)
        rec["purpose"] = d.purpose
        rec["legal_basis"] = basis
        if op.stores:
            rec["stores"] = True
        return rec

    def dataset(self, platform: str, stem: str, ms: int) -> str:
        day = datetime.fromtimestamp(ms / 1000, _KST).strftime("%Y%m%d")
        return f"ds-{platform}-{stem}-{day}"

    def egress_record(
        self, platform: str, ms: int, role: str, src: str, dst: str, cats: list[str] | None
    ) -> dict[str, Any]:
        rng = self.rng
        rec = self.head("egress", platform, role, ms)
        rec["src_ip"] = self.ip(src)
        rec["dst_ip"] = self.ip(dst)
        rec["bytes"] = 0
        rec["dst_port"] = 443
        rec["protocol"] = "tcp"
        if rng.random() < 0.6:
            rec["dst_host"] = self.host(dst, self.pick(("api", "storage", "stream")))
        if src == HOME and rng.random() < 0.3:
            rec["src_country"] = src
        if cats is not None:
            rec["data_categories"] = cats
        return rec

    def egress_abroad(self, platform: str, ms: int) -> dict[str, Any]:
        rng = self.rng
        d = self.disclosure(platform)
        op: _Op = self.pick([op for op in _ABROAD_OPS if _under(op.categories[0], d.items)])
        rec = self.egress_record(
            platform, ms, op.role, HOME, d.country, self.categories(op, d.items)
        )
        rec["subject_region"] = HOME
        n = rng.randint(1, 120)
        self.set_records(rec, platform, d.country, ms, n)
        rec["bytes"] = max(1, n) * rng.randint(400, 1600)
        if rng.random() < 0.3:
            rec["dataset_id"] = self.dataset(platform, op.dataset or "events", ms)
        return rec

    def domestic(self, platform: str, ms: int) -> dict[str, Any]:
        rng = self.rng
        op: _Op = self.pick(_DOMESTIC_OPS)
        cats = self.categories(op, None)
        if rng.random() < 0.5:
            rec = self.api_record(platform, ms, op, HOME, cats, registry_only=rng.random() < 0.3)
            rec["records"] = rng.randint(*op.records)
            if op.stores:
                rec["stores"] = True
            return rec
        rec = self.egress_record(platform, ms, op.role, HOME, HOME, cats)
        rec["subject_region"] = HOME
        rec["records"] = rng.randint(*op.records)
        rec["bytes"] = rec["records"] * rng.randint(300, 2000)
        return rec

    def system(self, platform: str, ms: int) -> dict[str, Any]:
        rng = self.rng
        name, category = self.pick(_SYSTEM_OPS)
        dst = self.pick(list(self.pools))
        if rng.random() < 0.5:
            rec = self.head("api_call", platform, "edge", ms)
            rec["operation"] = name
            if rng.random() < 0.15:
                rec["endpoint"] = f"https://{self.pick(_UNKNOWN_HOSTS)}/v1/{name.split('.')[0]}"
            else:
                rec["endpoint"] = f"https://{self.host(dst)}/v1/{name.split('.')[0]}"
                rec["dst_ip"] = self.ip(dst)
            rec["src_ip"] = self.ip(HOME)
            rec["method"] = (
                "GET" if name.endswith((".get", ".fetch")) or name == "healthcheck" else "POST"
            )
            rec["status"] = 200
        else:
            rec = self.head("egress", platform, "edge", ms)
            rec["src_ip"] = self.ip(HOME)
            rec["dst_ip"] = self.private_ip() if rng.random() < 0.2 else self.ip(dst)
            rec["bytes"] = rng.randint(200, 2_000_000)
            rec["dst_port"] = self.pick((443, 443, 4317, 9092, 53))
            rec["protocol"] = "udp" if rec["dst_port"] == 53 else "tcp"
        if category is not None:
            rec["data_categories"] = [category]
        return rec

    def foreign(self, platform: str, ms: int) -> dict[str, Any]:
        """Other regions' users: personal data, but not the home region's to protect."""
        rng = self.rng
        region = self.pick(self.countries(_FOREIGN_REGIONS) or ["US"])
        dst = self.pick(self.countries(("SG", "US", "CN", "IE", "DE")))
        op: _Op = self.pick(_ABROAD_OPS)
        rec = self.egress_record(platform, ms, op.role, region, dst, self.categories(op, None))
        rec["subject_region"] = region
        rec["records"] = rng.randint(*op.records)
        rec["bytes"] = rec["records"] * rng.randint(400, 1600)
        return rec

    def consent_change(self, platform: str, ms: int) -> dict[str, Any]:
        rng = self.rng
        granted = self.granted[platform]
        rec = self.head("consent", platform, "consent", ms)
        if granted and rng.random() < 0.08:
            # A lawful withdrawal: the subject is never named on consent again.
            i = rng.randrange(len(granted))
            subject = granted[i]
            granted[i] = granted[-1]
            granted.pop()
            self.withdrawn[platform].add(subject)
            rec["subject_id"] = subject
            rec["scope"] = "overseas_transfer"
            rec["granted"] = False
            if rng.random() < 0.5:
                rec["countries"] = [self.disclosure(platform).country]
            return rec
        if granted and rng.random() < 0.2:
            subject = self.pick(granted)  # renewed consent, e.g. after a policy update
        else:
            subject = self.new_subject()
            if len(granted) < 50_000:
                granted.append(subject)
            else:
                granted[rng.randrange(len(granted))] = subject
        rec["subject_id"] = subject
        rec["scope"] = "overseas_transfer"
        rec["granted"] = True
        if rng.random() < 0.6:
            rec["countries"] = ["*"]
        return rec

    # -- violation episodes: each returns (delay ms from now, record) in send order -------------

    def episode_records(self, kind: str, ms: int) -> list[tuple[int, dict[str, Any]]]:
        build: Callable[[int], list[tuple[int, dict[str, Any]]]] = getattr(self, "v_" + kind)
        return build(ms)

    def v_no_legal_basis(self, ms: int) -> list[tuple[int, dict[str, Any]]]:
        rec = self.api_abroad(self.platform(), ms)
        if self.rng.random() < 0.5:
            rec["legal_basis"] = "none"
        else:
            del rec["legal_basis"]
        return [(0, rec)]

    def v_undisclosed_destination(self, ms: int) -> list[tuple[int, dict[str, Any]]]:
        rng = self.rng
        platform = self.platform()
        # Where each platform's group sits but its policy does not say so.
        wanted = {
            "temu": ("CN", "HK", "JP"),
            "shein": ("CN", "HK", "IE"),
            "aliexpress": ("HK", "RU", "US"),
        }
        country = self.pick(self.countries(wanted[platform]) or self.countries(("CN",)))
        op: _Op = self.pick([op for op in _ABROAD_OPS if not op.stores])
        cats = self.categories(op, None)
        if rng.random() < 0.5:
            rec = self.api_record(platform, ms, op, country, cats)
            rec["recipient"] = f"affiliate ({country})"
            rec["legal_basis"] = "contract"
        else:
            rec = self.egress_record(platform, ms, op.role, HOME, country, cats)
            rec["subject_region"] = HOME
            rec["bytes"] = rng.randint(2_000, 400_000)
        self.set_records(rec, platform, country, ms, rng.randint(*op.records))
        return [(0, rec)]

    def v_stored_in_watch_country(self, ms: int) -> list[tuple[int, dict[str, Any]]]:
        # AliExpress is the one platform that disclosed China, so the storage alone is the finding.
        platform = "aliexpress" if "aliexpress" in self.cfg.platforms else self.platform()
        op = next(o for o in _ABROAD_OPS if o.name == "s3:PutObject")
        cats = self.categories(op, ("user.contact", "user.name"))
        rec = self.api_record(platform, ms, op, "CN", cats, registry_only=self.rng.random() < 0.5)
        rec["recipient"] = DISCLOSED["aliexpress"][0].recipient
        self.set_records(rec, platform, "CN", ms, self.rng.randint(*op.records))
        rec["dataset_id"] = self.dataset(platform, "orders-archive", ms)
        rec["legal_basis"] = "contract"
        rec["stores"] = True
        return [(0, rec)]

    def v_onward_transfer(self, ms: int) -> list[tuple[int, dict[str, Any]]]:
        rng = self.rng
        platform = self.platform()
        first = "CN" if platform == "aliexpress" else "SG"
        thirds = {"CN": ("SG", "RU", "VN", "US"), "SG": ("US", "CN", "VN")}[first]
        third = self.pick(self.countries(thirds))
        dataset = f"ds-{platform}-export-{rng.getrandbits(32):08x}"
        cats = ["user.contact.address", "user.name"]
        n = rng.randint(200, 5000)
        # Usually the copy moves on within hours; sometimes the first hop's export
        # arrives late (a batch shipper), so the second hop is seen first.
        reverse = rng.random() < 0.3
        if reverse:
            hop1_ms, hop2_ms = ms - rng.randint(1_000, 20 * 60_000), ms
        else:
            hop1_ms, hop2_ms = ms, ms + rng.randint(60_000, 6 * 3_600_000)
        hop1 = self.egress_record(platform, hop1_ms, "order", HOME, first, cats)
        hop1["subject_region"] = HOME
        hop1["dataset_id"] = dataset
        self.set_records(hop1, platform, first, hop1_ms, n)
        hop1["bytes"] = n * rng.randint(500, 1200)
        hop2 = self.egress_record(platform, hop2_ms, "logistics", first, third, list(cats))
        hop2["subject_region"] = HOME
        hop2["dataset_id"] = dataset
        if rng.random() < 0.5:
            hop2["src_country"] = first
        self.set_records(hop2, platform, third, hop2_ms, n)
        hop2["bytes"] = n * rng.randint(500, 1200)
        if reverse:
            return [(0, hop2), (rng.randint(1_000, 60_000), hop1)]
        return [(0, hop1), (hop2_ms - ms, hop2)]

    def v_consent_withdrawn(self, ms: int) -> list[tuple[int, dict[str, Any]]]:
        rng = self.rng
        platform = self.platform()
        d = self.disclosure(platform)
        granted = self.granted[platform]
        subject = granted.pop(rng.randrange(len(granted))) if granted else self.new_subject()
        self.withdrawn[platform].add(subject)
        withdraw = self.head("consent", platform, "consent", ms)
        withdraw["subject_id"] = subject
        withdraw["scope"] = "overseas_transfer"
        withdraw["granted"] = False
        withdraw["countries"] = self.pick(([d.country], ["*"]))
        op: _Op = self.pick(
            [o for o in _ABROAD_OPS if o.subjects and _under(o.categories[0], d.items)]
        )
        lag = rng.randint(60_000, 45 * 60_000)
        call = self.api_record(platform, ms + lag, op, d.country, self.categories(op, d.items))
        call["recipient"] = d.recipient
        self.set_records(call, platform, d.country, ms + lag, rng.randint(*op.records))
        call["subject_ids"] = [subject, *self.subjects_granted(platform, rng.randint(0, 3))]
        call["purpose"] = d.purpose
        call["legal_basis"] = "consent"
        return [(0, withdraw), (lag, call)]

    def v_national_id_abroad(self, ms: int) -> list[tuple[int, dict[str, Any]]]:
        rng = self.rng
        platform = self.platform()
        d = self.disclosure(platform)
        # Customs clearance abroad wants an identifier; the lawful one is the personal
        # customs code, the violation ships the resident registration number instead.
        op = next(o for o in _DOMESTIC_OPS if o.name == "customs.clearance.submit")
        cats = [RRN, "user.name", "user.contact.address"]
        if rng.random() < 0.5:
            rec = self.api_record(platform, ms, op, d.country, cats)
            rec["recipient"] = d.recipient
            rec["legal_basis"] = "contract"
        else:
            rec = self.egress_record(platform, ms, op.role, HOME, d.country, cats)
            rec["subject_region"] = HOME
            rec["bytes"] = rng.randint(2_000, 80_000)
        self.set_records(rec, platform, d.country, ms, rng.randint(1, 40))
        return [(0, rec)]

    def v_bulk_volume(self, ms: int) -> list[tuple[int, dict[str, Any]]]:
        rng = self.rng
        platform = self.platform()
        d = self.disclosure(platform)
        op = next(o for o in _ABROAD_OPS if o.name == "orders.export")
        parts = rng.randint(3, 5)
        total = int(self.cfg.bulk_threshold * rng.uniform(1.1, 1.6))
        gaps = [rng.randint(30_000, 8 * 60_000) for _ in range(parts - 1)]
        window = self.cfg.bulk_window_ms
        # All parts inside one tumbling window (the rule's windows align to the epoch).
        begin = ms
        if (begin % window) + sum(gaps) >= window:
            begin = begin - begin % window + window + rng.randint(1_000, 60_000)
        out: list[tuple[int, dict[str, Any]]] = []
        at = begin
        dataset = self.dataset(platform, "orders-bulk", begin)
        for i in range(parts):
            rec = self.api_record(platform, at, op, d.country, self.categories(op, d.items))
            rec["recipient"] = d.recipient
            rec["records"] = total // parts + (total % parts if i == 0 else 0)
            rec["dataset_id"] = dataset
            rec["purpose"] = d.purpose
            rec["legal_basis"] = "contract"
            out.append((at - ms, rec))
            if i < parts - 1:
                at += gaps[i]
        return out

    def v_unresolved_destination(self, ms: int) -> list[tuple[int, dict[str, Any]]]:
        rng = self.rng
        platform = self.platform()
        op: _Op = self.pick([o for o in _ABROAD_OPS if not o.stores])
        cats = self.categories(op, None)
        if rng.random() < 0.5:
            rec = self.head("egress", platform, op.role, ms)
            rec["src_ip"] = self.ip(HOME)
            rec["dst_ip"] = self.private_ip()  # a tunnel or proxy: the real exit is hidden
            rec["bytes"] = rng.randint(1_000, 200_000)
            rec["dst_port"] = 443
            rec["protocol"] = "tcp"
            rec["src_country"] = HOME
            rec["subject_region"] = HOME
            rec["data_categories"] = cats
        else:
            rec = self.head("api_call", platform, op.role, ms)
            rec["operation"] = op.name
            rec["endpoint"] = f"https://{self.pick(_UNKNOWN_HOSTS)}/v2/{op.name.split('.')[0]}"
            rec["src_country"] = HOME
            rec["method"] = op.method
            rec["status"] = 200
            rec["subject_region"] = HOME
            rec["data_categories"] = cats
            rec["legal_basis"] = "contract"
        rec["records"] = rng.randint(*op.records)
        return [(0, rec)]

    # -- invalid records ----------------------------------------------------------------------

    def invalid(self, ms: int) -> SimItem:
        rng = self.rng
        rec = self.lawful(ms)
        kind = rec["kind"]
        family = self.pick(INVALID_REASONS)
        if family == "invalid_json":
            raw = orjson.dumps(rec)
            how = rng.randrange(3)
            if how == 0:  # cut off mid-record (a shipper killed while writing)
                raw = raw[: rng.randrange(max(2, len(raw) // 3), len(raw) - 1)]
            elif how == 1:  # Latin-1 bytes where UTF-8 belongs: also invalid JSON by the contract
                at = rng.randrange(1, len(raw) - 1)
                raw = raw[:at] + b"\xe9\xff" + raw[at:]
            else:  # a Python repr instead of JSON
                raw = repr(rec).encode()
            return SimItem("invalid", kind, raw, reason="invalid_json")
        if family == "not_an_object":
            # Never a JSON array: a Kafka message holding an array is a batch of records.
            value: object = self.pick((rec["event_id"], 42, None, True))
            return SimItem("invalid", kind, orjson.dumps(value), reason="not_an_object")
        if family == "unknown_kind":
            rec["kind"] = self.pick(("flow", "Egress", "api-call", "audit", 3))
            return SimItem("invalid", kind, orjson.dumps(rec), reason="unknown_kind")
        if family == "unsupported_version":
            rec["v"] = self.pick((2, 0, "1", 1.5))
            return SimItem("invalid", kind, orjson.dumps(rec), reason="unsupported_version")
        if family == "missing_field":
            name = self.pick(("kind", *_REQUIRED[kind]))
            if rng.random() < 0.5:
                del rec[name]
            else:
                rec[name] = None  # a required field set to null counts as missing
            return SimItem("invalid", kind, orjson.dumps(rec), reason=f"missing_field:{name}")
        name, bad = self.pick(_CORRUPT["common"] + _CORRUPT[kind])
        rec[name] = bad
        return SimItem("invalid", kind, orjson.dumps(rec), reason=f"invalid_field:{name}")

    # -- the stream -----------------------------------------------------------------------------

    def item(self, label: str, rec: dict[str, Any], episode: int | None = None) -> SimItem:
        return SimItem(label, rec["kind"], orjson.dumps(rec), rec, episode=episode)

    def defer(self, due: int, item: SimItem) -> None:
        self.seq += 1
        heapq.heappush(self.deferred, (due, self.seq, item))

    def inject(self, kind: str) -> SimItem:
        """Start an episode: its first record now, the rest when their event time comes."""
        self.episode += 1
        now: SimItem | None = None
        for delay, rec in self.episode_records(kind, self.clock):
            it = self.item(kind, rec, self.episode)
            if now is None and delay == 0:
                now = it
            else:
                self.defer(self.clock + delay, it)
        # A bulk burst moved to the next window has nothing to send yet.
        return now if now is not None else self.item("lawful", self.lawful(self.clock))

    def run(self) -> Iterator[SimItem]:
        count = self.cfg.count
        emitted = 0
        owed = sum(_MAX_EPISODE[k] for _, k in self.scheduled)
        scheduled = deque(self.scheduled)
        # The next new record's event time is drawn ahead, so a deferred record due
        # before it goes out first and event time never runs backwards.
        upcoming = self.next_arrival()
        while count == 0 or emitted < count:
            left = count - emitted - len(self.deferred) if count else 1 << 62
            if self.deferred and (self.deferred[0][0] <= upcoming or left <= 0):
                due, _, it = heapq.heappop(self.deferred)
                self.clock = max(self.clock, due)
                upcoming = max(upcoming, self.clock)
                out = it
            else:
                self.clock = upcoming
                upcoming = self.next_arrival()
                if scheduled and (scheduled[0][0] <= emitted or left <= owed):
                    kind = scheduled.popleft()[1]
                    owed -= _MAX_EPISODE[kind]
                    out = self.inject(kind)
                else:
                    out = self.draw(left - owed)
            if out.valid:
                self.recent.append(out)
            emitted += 1
            yield out

    def draw(self, room: int) -> SimItem:
        u = self.rng.random()
        for threshold, label in self.choices:
            if u < threshold:
                if label == "invalid":
                    return self.invalid(self.clock)
                if label == "duplicate":
                    if self.recent:
                        src = self.pick(self.recent)
                        return SimItem("duplicate", src.kind, src.raw, src.record)
                    break
                if room >= _MAX_EPISODE[label]:
                    return self.inject(label)
                break
        return self.item("lawful", self.lawful(self.clock))


_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "egress": ("event_id", "ts", "platform", "src_ip", "dst_ip", "bytes"),
    "api_call": ("event_id", "ts", "platform", "operation", "endpoint"),
    "consent": ("event_id", "ts", "platform", "subject_id", "scope", "granted"),
}
# (field, a value the contract rejects), by kind. Values are the mistakes real
# shippers make: local times without offset, names in the wrong case, numbers as text.
_CORRUPT: Final[Mapping[str, tuple[tuple[str, object], ...]]] = {
    "common": (
        ("event_id", ""),
        ("event_id", "x" * 200),
        ("ts", "2026-10-01 10:00:00"),
        ("ts", "yesterday"),
        ("ts", -5),
        ("platform", "AliExpress"),
        ("platform", "temu shop"),
        ("service", 17),
    ),
    "egress": (
        ("src_ip", "10.0.0.256"),
        ("dst_ip", "not-an-ip"),
        ("bytes", -1),
        ("bytes", "1024"),
        ("dst_port", 70000),
        ("src_country", "Korea"),
        ("subject_region", "kr"),
        ("data_categories", "user.contact"),
        ("records", -3),
    ),
    "api_call": (
        ("endpoint", ""),
        ("dst_ip", "47.92.1"),
        ("status", "200"),
        ("subject_region", "KOR"),
        ("data_categories", ["user contact"]),
        ("subject_ids", "u-0001"),
        ("legal_basis", "legitimate_interest"),
        ("stores", "yes"),
    ),
    "consent": (
        ("subject_id", ""),
        ("scope", "marketing"),
        ("granted", "false"),
        ("countries", []),
        ("countries", ["KR", "ZZ"]),
    ),
}


def generate_items(cfg: SimConfig) -> Iterator[SimItem]:
    """The whole stream: lawful, violation, invalid and duplicate items, `cfg.count` of them."""
    return _Sim(cfg).run()


def generate(cfg: SimConfig) -> Iterator[dict[str, Any]]:
    """The valid records of the stream (duplicates included, invalid items left out)."""
    for item in generate_items(cfg):
        if item.record is not None:
            yield item.record


# --- GeoIP-drawn address pools ------------------------------------------------------------


def networks_from_geoip(
    path: str | Path, countries: Sequence[str] = POOL_COUNTRIES, per_country: int = 8
) -> dict[str, list[str]]:
    """Networks the database itself places in each country, IPv4 and (when it has them) IPv6.

    Drawing from the database the monitor will use makes every address land where the
    generator meant it, whatever database the demo ships.
    """
    from monitor.geo.sample_networks import sample_networks

    v4 = sample_networks(path, list(countries), per_country, ip_version=4)
    v6 = sample_networks(path, list(countries), max(1, per_country // 2), ip_version=6)
    return {c: v4.get(c, []) + v6.get(c, []) for c in countries if v4.get(c) or v6.get(c)}


# --- sinks and the command ---------------------------------------------------------------------


@dataclass
class SimStats:
    by_kind: Counter[str] = field(default_factory=Counter)  # valid records, duplicates included
    episodes: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    _seen_episodes: set[int] = field(default_factory=set)

    def add(self, item: SimItem) -> None:
        if item.reason is not None:
            self.invalid[item.reason.split(":")[0]] += 1
            return
        self.by_kind[item.kind] += 1
        if item.label == "duplicate":
            self.duplicates += 1
        elif item.episode is not None and item.episode not in self._seen_episodes:
            self._seen_episodes.add(item.episode)
            self.episodes[item.label] += 1

    @property
    def total(self) -> int:
        return sum(self.by_kind.values()) + sum(self.invalid.values())

    def render(self) -> str:
        def counts(c: Counter[str]) -> str:
            return ", ".join(f"{k} {n}" for k, n in sorted(c.items())) or "none"

        return (
            f"{self.total} items: records {counts(self.by_kind)}"
            f" | violations {counts(self.episodes)}"
            f" | invalid {sum(self.invalid.values())} ({counts(self.invalid)})"
            f" | duplicates {self.duplicates}"
        )


class FileSink:
    """JSON Lines, one item a line, in stream order."""

    def __init__(self, stream: IO[bytes], owned: bool = True) -> None:
        self.stream = stream
        self.owned = owned

    def send(self, item: SimItem) -> None:
        self.stream.write(item.raw + b"\n")

    def close(self) -> None:
        if self.owned:
            self.stream.close()
        else:
            self.stream.flush()


# Kafka's default message.max.bytes is about 1 MB; batches are cut below it.
_MAX_BATCH_BYTES: Final = 900_000


class KafkaSink:
    """Values to the topic of each item's kind, one record or one batch per message."""

    def __init__(
        self,
        producer: KafkaProducer,
        topics: Mapping[str, str],
        batch: int = 1,
        batch_format: str = "array",
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.batch = max(1, batch)
        self.array = batch_format == "array"
        self.pending: dict[str, list[bytes]] = {}
        self.pending_bytes: dict[str, int] = {}

    @classmethod
    def connect(
        cls,
        bootstrap: str,
        topics: Mapping[str, str],
        batch: int,
        batch_format: str,
        acks: str,
    ) -> KafkaSink:
        # kafka-python checksums every record batch with CRC-32C; with the `crc32c`
        # package installed it uses that C implementation instead of its pure-Python
        # fallback, which otherwise dominates the producer's CPU time.
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=bootstrap.split(","),
            client_id="xborder-simulate",
            acks="all" if acks == "all" else int(acks),
            linger_ms=5,
            compression_type=None,
        )
        return cls(producer, topics, batch, batch_format)

    def send(self, item: SimItem) -> None:
        topic = self.topics[item.kind]
        if self.batch == 1 or (self.array and item.reason == "invalid_json"):
            # Inside a JSON array, one broken element would turn the whole batch
            # into a single invalid_json dead letter: such items travel alone.
            self.producer.send(topic, value=item.raw)
            return
        buf = self.pending.setdefault(topic, [])
        size = self.pending_bytes.get(topic, 0)
        if buf and size + len(item.raw) > _MAX_BATCH_BYTES:
            self._flush(topic)
            buf = self.pending.setdefault(topic, [])
            size = 0
        buf.append(item.raw)
        self.pending_bytes[topic] = size + len(item.raw) + 1
        if len(buf) >= self.batch:
            self._flush(topic)

    def _flush(self, topic: str) -> None:
        buf = self.pending.pop(topic, [])
        self.pending_bytes.pop(topic, None)
        if not buf:
            return
        value = b"[" + b",".join(buf) + b"]" if self.array else b"\n".join(buf)
        self.producer.send(topic, value=value)

    def close(self) -> None:
        for topic in list(self.pending):
            self._flush(topic)
        self.producer.flush()
        self.producer.close()


def _parse_start(text: str | None) -> int | None:
    from monitor.contract.schemas import parse_ts
    from monitor.errors import XborderError

    if text is None or text == "now":
        return None
    ms = parse_ts(int(text) if text.isdigit() else text)
    if ms is None:
        raise XborderError(f"--start: expected RFC 3339 with offset or epoch ms, got {text!r}")
    return ms


def _parse_counts(values: Sequence[str]) -> dict[str, int]:
    from monitor.errors import XborderError

    out: dict[str, int] = {}
    for value in values:
        kind, _, n = value.partition("=")
        if kind not in VIOLATIONS or not n.isdigit():
            raise XborderError(f"--violation: expected KIND=N with KIND in {', '.join(VIOLATIONS)}")
        out[kind] = int(n)
    return out


def cmd_simulate(args: argparse.Namespace) -> int:
    from monitor.config.settings import Settings
    from monitor.errors import XborderError

    networks = None
    if args.geoip_country is not None:
        networks = networks_from_geoip(args.geoip_country)
    cfg = SimConfig(
        seed=args.seed,
        count=args.count,
        start_ms=_parse_start(args.start),
        events_per_second=args.events_per_second,
        violation_rates={k: args.violation_rate / len(VIOLATIONS) for k in VIOLATIONS},
        violation_counts=_parse_counts(args.violation),
        invalid_rate=args.invalid_rate,
        duplicate_rate=args.duplicate_rate,
        networks=networks,
        ipv6_share=args.ipv6_share,
    )
    try:
        items = generate_items(cfg)
    except ValueError as e:
        raise XborderError(str(e)) from e

    report = sys.stdout
    sink: FileSink | KafkaSink
    target: str
    if args.out is not None:
        if str(args.out) == "-":
            sink, target, report = FileSink(sys.stdout.buffer, owned=False), "stdout", sys.stderr
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            sink, target = FileSink(args.out.open("wb")), str(args.out)
    else:
        settings = Settings.from_env()
        bootstrap = args.bootstrap_servers or settings.bootstrap
        topics = {
            "egress": args.topic_egress or settings.topics.egress,
            "api_call": args.topic_api or settings.topics.api,
            "consent": args.topic_consent or settings.topics.consent,
        }
        try:
            sink = KafkaSink.connect(bootstrap, topics, args.batch, args.batch_format, args.acks)
        except Exception as e:  # kafka-python raises several unrelated types on connect
            raise XborderError(f"cannot connect to Kafka at {bootstrap}: {e}") from e
        target = f"kafka {bootstrap}"

    stats = SimStats()
    started = time.perf_counter()
    try:
        for n, item in enumerate(items, 1):
            sink.send(item)
            stats.add(item)
            if args.rate > 0:
                ahead = started + n / args.rate - time.perf_counter()
                if ahead > 0.005:
                    time.sleep(ahead)
    except KeyboardInterrupt:
        pass  # forever-runs end with Ctrl-C; still flush and report
    finally:
        sink.close()
    seconds = time.perf_counter() - started
    rate = stats.total / seconds if seconds > 0 else 0.0
    print(f"simulated {stats.render()} in {seconds:.2f}s ({rate:,.0f}/s) -> {target}", file=report)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="generate synthetic platform telemetry with injected violations",
        description="Synthetic telemetry of aliexpress, temu and shein: lawful traffic with "
        "injected violations of every rule, invalid records and duplicates, to a JSON Lines "
        "file or to Kafka.",
    )
    p.add_argument("--count", type=int, default=10_000, help="items to produce, 0 = forever")
    p.add_argument("--rate", type=float, default=0.0, help="items per second wall-clock (0 = max)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", help="event time of the first record: RFC 3339, epoch ms or now")
    p.add_argument(
        "--events-per-second", type=float, default=10.0, help="event-time rate (daytime KST)"
    )
    p.add_argument(
        "--violation-rate",
        type=float,
        default=8.0,
        help="violation episodes per 1000 items, shared equally by the kinds (default 8)",
    )
    p.add_argument(
        "--violation",
        action="append",
        default=[],
        metavar="KIND=N",
        help=f"exactly N episodes of KIND (repeatable; needs --count): {', '.join(VIOLATIONS)}",
    )
    p.add_argument("--invalid-rate", type=float, default=2.0, help="invalid items per 1000")
    p.add_argument("--duplicate-rate", type=float, default=5.0, help="re-sent records per 1000")
    p.add_argument("--ipv6-share", type=float, default=0.15, help="share of IPv6 addresses")
    p.add_argument(
        "--geoip-country",
        type=Path,
        help="draw addresses from networks this GeoIP database places (default: built-in ranges)",
    )
    out = p.add_argument_group("output (a file, or Kafka when --out is not given)")
    out.add_argument("--out", type=Path, help="JSON Lines file ('-' for stdout)")
    out.add_argument(
        "--bootstrap-servers",
        help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    out.add_argument("--topic-egress", help="default telemetry.egress (XBORDER_TOPIC_EGRESS)")
    out.add_argument("--topic-api", help="default telemetry.api (XBORDER_TOPIC_API)")
    out.add_argument("--topic-consent", help="default telemetry.consent (XBORDER_TOPIC_CONSENT)")
    out.add_argument("--batch", type=int, default=1, help="records per Kafka message (1 = single)")
    out.add_argument("--batch-format", choices=("array", "jsonl"), default="array")
    out.add_argument("--acks", choices=("0", "1", "all"), default="1")
    p.set_defaults(func=cmd_simulate)
