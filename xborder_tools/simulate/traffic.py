"""What the simulated platforms do that no configuration file says, all in one place.

Address networks per country, how much each platform sends and from which
services, the API operations that carry personal data, how providers name
their service hosts and the hosts in countries the endpoint registry does
not cover, the daily curve, and the stories violation episodes tell. What
the configuration does say (platforms, disclosures, registry, home region,
watch countries, bulk threshold) is read in world.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ABROAD_OPS",
    "BUILTIN_NETWORKS",
    "DIURNAL",
    "DOMESTIC_OPS",
    "FOREIGN_DESTINATIONS",
    "FOREIGN_REGIONS",
    "GEOIP_ONLY_HOSTS",
    "LAWFUL_VOLUME_SHARE",
    "ONWARD_THIRDS",
    "OTHER_PLATFORM_WEIGHT",
    "OTHER_SERVICES",
    "OUTSIDE_CATEGORIES",
    "PLATFORM_WEIGHTS",
    "POOL_COUNTRIES",
    "RRN",
    "SERVICES",
    "SERVICE_NAMES",
    "STORAGE_PRODUCTS",
    "STREAM_PRODUCTS",
    "SYSTEM_OPS",
    "UNDISCLOSED_RECIPIENTS",
    "UNDISCLOSED_STORIES",
    "UNKNOWN_HOSTS",
    "Op",
    "under",
]

# Real allocations of the named countries, so most live databases agree. The
# tests build their GeoIP databases from these (tests/support/geoip_build.py), and
# hand-written test scenarios use addresses inside them.
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

# Share of the bulk threshold lawful traffic may fill per platform, country and window,
# so the lawful background alone never crosses it however the rates are set.
LAWFUL_VOLUME_SHARE: Final = 0.6

# Shares of the traffic by platform; a platform the disclosures add gets OTHER_PLATFORM_WEIGHT.
PLATFORM_WEIGHTS: Final[Mapping[str, float]] = {"aliexpress": 0.4, "temu": 0.35, "shein": 0.25}
OTHER_PLATFORM_WEIGHT: Final = 0.25

# Service of each role per platform, with the timestamp form that service emits
# ("kst": RFC 3339 +09:00, "utc": RFC 3339 Z, "ms": epoch milliseconds): real
# fleets mix them, and the monitor must accept both.
SERVICES: Final[Mapping[str, Mapping[str, tuple[str, str]]]] = {
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
OTHER_SERVICES: Final[Mapping[str, tuple[str, str]]] = {
    "order": ("orders", "ms"),
    "payment": ("payments", "kst"),
    "profile": ("accounts", "ms"),
    "logistics": ("logistics", "kst"),
    "edge": ("edge", "utc"),
    "consent": ("privacy", "kst"),
}

# Service host names under an endpoint-registry suffix, by the provider domain it
# ends in (`{api_id}`: a per-suffix API id): the registry's suffix
# .ap-southeast-1.amazonaws.com gives s3.ap-southeast-1.amazonaws.com and the rest.
# A suffix of another provider gives api.<suffix>.
SERVICE_NAMES: Final[Mapping[str, tuple[str, ...]]] = {
    "amazonaws.com": ("s3", "{api_id}.execute-api", "sqs", "kinesis"),
    "amazonaws.com.cn": ("apigw.cn-north-1", "kinesis.cn-north-1"),
    "aliyuncs.com": ("fc.cn-hangzhou", "datahub.cn-hangzhou"),
    "myqcloud.com": ("cos.ap-shanghai",),
    "volces.com": ("tos-cn-beijing",),
}
# A host's service, by the product its first label names (oss-cn-hangzhou: storage).
STORAGE_PRODUCTS: Final = frozenset({"s3", "oss", "cos", "tos"})
STREAM_PRODUCTS: Final = frozenset({"kinesis", "datahub"})
# Hosts in countries the registry does not cover; calls to them carry a dst_ip
# (oss-cn-hongkong is CN by the registry's .aliyuncs.com, HK by GeoIP).
GEOIP_ONLY_HOSTS: Final[Mapping[str, tuple[str, ...]]] = {
    "JP": ("s3.ap-northeast-1.amazonaws.com", "edge-nrt.cdn.example.net"),
    "DE": ("s3.eu-central-1.amazonaws.com", "edge-fra.cdn.example.net"),
    "IE": ("s3.eu-west-1.amazonaws.com", "analytics-eu.example.net"),
    "HK": ("oss-cn-hongkong.aliyuncs.com", "edge-hkg.cdn.example.net"),
    "RU": ("s3.ru-logistics.example", "api.ru-logistics.example"),
    "VN": ("s3.vn-fulfilment.example", "api.vn-fulfilment.example"),
}

# Destinations nobody can place: the registry does not know them and they carry no dst_ip.
UNKNOWN_HOSTS: Final = (
    "relay.partner-sync.example",
    "ingest.adnet-partner.example",
    "crm-bridge.internal.example",
)

# Relative event rate by KST hour: quiet nights, an evening shopping peak.
DIURNAL: Final = (
    0.5, 0.35, 0.25, 0.2, 0.2, 0.25, 0.4, 0.6, 0.8, 0.9, 1.0, 1.0,
    1.1, 1.0, 0.95, 0.95, 1.0, 1.05, 1.1, 1.2, 1.35, 1.45, 1.4, 0.9,
)  # fmt: skip

RRN: Final = "user.government_id.national_identification_number"


@dataclass(frozen=True, slots=True)
class Op:
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


ABROAD_OPS: Final = (
    Op(
        "orders.export",
        "order",
        "POST",
        ("user.contact.address", "user.name", "user.contact.phone_number", "user.contact.email"),
        (20, 800),
        dataset="orders",
    ),
    Op(
        "profile.sync",
        "profile",
        "PUT",
        ("user.name", "user.contact.email", "user.contact.phone_number"),
        (1, 1),
        subjects=True,
    ),
    Op(
        "logistics.label.create",
        "logistics",
        "POST",
        ("user.contact.address", "user.name", "user.contact.phone_number"),
        (1, 6),
        subjects=True,
    ),
    Op(
        "s3:PutObject",
        "order",
        "PUT",
        ("user.contact.address", "user.name", "user.contact.email"),
        (50, 400),
        stores=True,
        dataset="orders-archive",
    ),
    Op(
        "payments.authorize",
        "payment",
        "POST",
        ("user.payment", "user.name"),
        (1, 1),
        subjects=True,
    ),
    Op(
        "recommendation.events.ingest",
        "profile",
        "POST",
        ("user.behavior.purchase_history", "user.behavior.browsing_history"),
        (1, 40),
        subjects=True,
    ),
    Op(
        "support.ticket.create",
        "profile",
        "POST",
        ("user.contact.email", "user.name"),
        (1, 1),
        subjects=True,
    ),
)
DOMESTIC_OPS: Final = (
    Op(
        "identity.verify",
        "profile",
        "POST",
        (RRN, "user.name", "user.contact.phone_number"),
        (1, 1),
    ),
    Op("orders.create", "order", "POST", ("user.contact.address", "user.name"), (1, 1)),
    Op(
        "delivery.dispatch",
        "logistics",
        "POST",
        ("user.contact.address", "user.name", "user.contact.phone_number"),
        (1, 30),
    ),
    Op("payments.authorize", "payment", "POST", ("user.payment", "user.financial"), (1, 1)),
    Op(
        "s3:PutObject",
        "order",
        "PUT",
        ("user.contact.address", "user.name", "user.device.ip_address"),
        (50, 400),
        stores=True,
        dataset="orders-archive",
    ),
    Op(
        "customs.clearance.submit",
        "logistics",
        "POST",
        (RRN, "user.name", "user.contact.address"),
        (1, 3),
    ),
)
SYSTEM_OPS: Final = (
    ("metrics.push", "system.operations"),
    ("logs.ship", "system.logs"),
    ("config.fetch", None),
    ("cdn.purge", None),
    ("healthcheck", None),
    ("feature_flags.get", "system.operations"),
)
# Other regions' users (their data is not the monitor's concern), and where it goes.
FOREIGN_REGIONS: Final = ("JP", "US", "SG", "DE")
FOREIGN_DESTINATIONS: Final = ("SG", "US", "CN", "IE", "DE")

# Stories episodes tell, wherever the configuration leaves them true. Where each
# platform's group sits but its policy may not say so (undisclosed destinations):
UNDISCLOSED_STORIES: Final[Mapping[str, tuple[str, ...]]] = {
    "temu": ("CN", "HK", "JP"),
    "shein": ("CN", "HK", "IE"),
    "aliexpress": ("HK", "RU", "US"),
}
# Where a recipient passes the data on, by the recipient's country (onward transfers).
ONWARD_THIRDS: Final[Mapping[str, tuple[str, ...]]] = {
    "CN": ("SG", "RU", "VN", "US"),
    "SG": ("US", "CN", "VN"),
}

# Personal data a platform sends beyond the items it disclosed for a country
# (undisclosed items): never resident registration numbers, which are
# national_id_abroad's.
OUTSIDE_CATEGORIES: Final = (
    "user.payment",
    "user.behavior.purchase_history",
    "user.financial.bank_account",
    "user.device.ip_address",
    "user.contact.phone_number",
)
# Recipients a platform's data reaches in a disclosed country without being
# named in its policy (undisclosed recipients).
UNDISCLOSED_RECIPIENTS: Final = (
    "Example Analytics Pte. Ltd.",
    "AdNet Partner Co., Ltd.",
    "Crossdock Fulfilment Services Ltd.",
)


def under(label: str, items: Sequence[str]) -> bool:
    return any(label == i or label.startswith(i + ".") for i in items)
