"""The world the simulated platforms live in: what they disclosed, where their hosts are."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from xborder_tools.simulate.traffic import POOL_COUNTRIES

__all__ = [
    "CORE_COUNTRIES",
    "DISCLOSED",
    "HOME",
    "HOSTS",
    "REGISTRY_COUNTRIES",
    "Disclosed",
    "networks_from_geoip",
]

HOME: Final = "KR"
CORE_COUNTRIES: Final = ("KR", "CN", "SG", "US")


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
REGISTRY_COUNTRIES: Final = frozenset({"KR", "CN", "SG", "US"})
HOSTS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
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
