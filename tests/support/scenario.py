"""A scenario written to the contract by hand, with its expected outcome worked out by hand.

Mixed kinds, both timestamp forms, IPv6, duplicates, out-of-order lines and
every dead-letter reason. Addresses come from `tests.support.geoip_build.TEST_NETWORKS`
(KR 211.234/16 and 2001:e60::/32, CN 47.92/14 and 240e::/20, SG 8.219/16,
US 52.0/11, RU 5.45.192/18). Used by replay tests and, produced to Kafka, by
the worker's integration tests.
"""

from __future__ import annotations

from typing import Any

import orjson

from monitor.contract.schemas import MAX_RECORD_BYTES

T0 = 1790812800000  # 2026-10-01T00:00:00Z (09:00 in Seoul)
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR

PERSONAL = {"subject_region": "KR", "data_categories": ["user.contact.email", "user.name"]}


def _egress(eid: str, ts: Any, platform: str, src: str, dst: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "egress",
        "event_id": eid,
        "ts": ts,
        "platform": platform,
        "src_ip": src,
        "dst_ip": dst,
        "bytes": 1000,
        **PERSONAL,
        **extra,
    }


def _api(eid: str, ts: Any, platform: str, endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "api_call",
        "event_id": eid,
        "ts": ts,
        "platform": platform,
        "operation": "orders.export",
        "endpoint": endpoint,
        "bytes": 500,
        **PERSONAL,
        **extra,
    }


def records() -> list[Any]:
    """The scenario's lines in file order; bytes are written as they are."""
    consent_call = _api(
        "temu-2",
        T0 + 20 * MIN,
        "temu",
        "https://api.example.cn/sync",
        dst_ip="47.92.3.3",
        src_country="KR",
        legal_basis="consent",
        subject_ids=["u-9", "u-10"],
    )
    return [
        # 1: first hop KR -> CN of dataset ds-1 (aliexpress disclosed CN: no alert)
        _egress(
            "ali-1",
            "2026-10-01T09:00:00+09:00",
            "aliexpress",
            "211.234.5.5",
            "47.92.10.1",
            dataset_id="ds-1",
        ),
        # 2, 3: no legal basis (absent, then none), IPv6 destinations, epoch ms
        _api("ali-2", T0 + MIN, "aliexpress", "api.example.cn", dst_ip="240e::1", src_country="KR"),
        _api(
            "ali-3",
            T0 + 2 * MIN,
            "aliexpress",
            "api.example.cn",
            dst_ip="240e:10::5",
            src_ip="2001:e60::9",
            legal_basis="none",
        ),
        # 4: a duplicate of 3, redelivered
        _api(
            "ali-3",
            T0 + 2 * MIN,
            "aliexpress",
            "api.example.cn",
            dst_ip="240e:10::5",
            src_ip="2001:e60::9",
            legal_basis="none",
        ),
        # 5: temu did not disclose China
        _egress("temu-1", T0 + 5 * MIN, "temu", "211.234.7.7", "47.93.1.1"),
        # 6-11: dead letters of every reason but too_large (added at the end)
        b"{this is not json",
        b"[1, 2]",
        b'{"kind": "flow", "event_id": "x", "ts": 1, "platform": "temu"}',
        b'{"kind": "egress", "v": 2, "event_id": "x", "ts": 1, "platform": "temu"}',
        orjson.dumps(
            {
                k: v
                for k, v in _egress("bad-1", T0, "temu", "211.234.1.1", "47.92.1.1").items()
                if k != "dst_ip"
            }
        ),
        orjson.dumps({**_egress("bad-2", T0, "temu", "211.234.1.1", "47.92.1.1"), "bytes": "10"}),
        # 12: bytes that are not UTF-8
        b'{"kind": "egress", "event_id": "\xff\xfe"}',
        # 13: second hop CN -> RU of ds-1, in order (first hop at line 1)
        _egress("ali-4", T0 + DAY, "aliexpress", "47.92.10.1", "5.45.200.1", dataset_id="ds-1"),
        # 14, 15: second hop CN -> US of ds-2 arrives before its first hop
        _egress(
            "ali-5",
            "2026-10-03T00:00:00Z",
            "aliexpress",
            "47.92.10.2",
            "52.1.2.3",
            dataset_id="ds-2",
        ),
        _egress(
            "ali-6",
            "2026-10-02T00:00:00Z",
            "aliexpress",
            "211.234.9.9",
            "47.92.10.2",
            dataset_id="ds-2",
        ),
        # 16: temu subject u-9 withdraws overseas-transfer consent for CN
        {
            "kind": "consent",
            "event_id": "temu-c1",
            "ts": "2026-10-01T00:10:00Z",
            "platform": "temu",
            "subject_id": "u-9",
            "scope": "overseas_transfer",
            "granted": False,
            "countries": ["CN"],
        },
        # 17: a call on consent naming u-9 (and u-10, who never withdrew), 18: its duplicate
        consent_call,
        dict(consent_call),
        # 19, 20: a call naming u-11, whose earlier withdrawal arrives after it
        _api(
            "temu-3",
            T0 + 40 * MIN,
            "temu",
            "https://api.example.cn/sync",
            dst_ip="47.92.3.3",
            src_country="KR",
            legal_basis="consent",
            subject_ids=["u-11"],
        ),
        {
            "kind": "consent",
            "event_id": "temu-c2",
            "ts": T0 + 30 * MIN,
            "platform": "temu",
            "subject_id": "u-11",
            "scope": "overseas_transfer",
            "granted": False,
        },
        # 21: storage in China, placed by the endpoint registry (no dst_ip)
        _api(
            "ali-7",
            T0 + 50 * MIN,
            "aliexpress",
            "https://oss-cn-hangzhou.aliyuncs.com/b/k",
            src_country="KR",
            legal_basis="consent",
            stores=True,
            operation="s3:PutObject",
        ),
        # 22: resident registration numbers to Singapore (shein disclosed SG)
        _egress(
            "shein-1",
            T0 + HOUR,
            "shein",
            "211.234.2.2",
            "8.219.4.4",
            data_categories=["user.government_id.national_identification_number"],
        ),
        # 23, 24, 25: bulk: 60,000 + 60,000 in one hour (02:00-03:00Z), with a duplicate
        _api(
            "shein-2",
            T0 + 130 * MIN,
            "shein",
            "api.example.sg",
            dst_ip="8.219.5.5",
            src_country="KR",
            legal_basis="contract",
            records=60000,
        ),
        _api(
            "shein-3",
            T0 + 160 * MIN,
            "shein",
            "api.example.sg",
            dst_ip="8.219.5.5",
            src_country="KR",
            legal_basis="contract",
            records=60000,
        ),
        _api(
            "shein-2",
            T0 + 130 * MIN,
            "shein",
            "api.example.sg",
            dst_ip="8.219.5.5",
            src_country="KR",
            legal_basis="contract",
            records=60000,
        ),
        # 26: 60,000 more 30 minutes after shein-3: within 60 minutes of it (a
        # sliding span, not clock hours), so it joins the alert
        _api(
            "shein-4",
            T0 + 190 * MIN,
            "shein",
            "api.example.sg",
            dst_ip="8.219.5.5",
            src_country="KR",
            legal_basis="contract",
            records=60000,
        ),
        # 27: a destination nothing can place
        _api(
            "temu-4",
            T0 + 3 * HOUR,
            "temu",
            "https://unknown.example/upload",
            src_country="KR",
            legal_basis="contract",
        ),
        # 28: no legal basis again, 30 hours later: a new alert of the same group key
        _api(
            "ali-8",
            T0 + 30 * HOUR,
            "aliexpress",
            "api.example.cn",
            dst_ip="47.92.1.1",
            src_country="KR",
        ),
        # 29, 30, 31: lawful or not personal: no alerts
        _egress(
            "ali-9",
            T0,
            "aliexpress",
            "211.234.5.5",
            "47.92.10.1",
            data_categories=["system.operations"],
        ),
        _egress("ali-10", T0, "aliexpress", "211.234.5.5", "47.92.10.1", subject_region="US"),
        _egress("ali-11", T0, "aliexpress", "211.234.5.5", "211.234.6.6"),
        # 32: too large
        orjson.dumps(
            {
                **_egress("big", T0, "temu", "211.234.1.1", "47.92.1.1"),
                "pad": "x" * MAX_RECORD_BYTES,
            }
        ),
    ]


def lines() -> list[bytes]:
    return [r if isinstance(r, bytes) else orjson.dumps(r) for r in records()]


# (rule, platform, src, dst, dataset) -> list of (event_count, records) of its alerts
EXPECTED_ALERTS: dict[
    tuple[str, str, str | None, str | None, str | None], list[tuple[int, int]]
] = {
    ("pipa.xborder.no_legal_basis", "aliexpress", "KR", "CN", None): [(2, 0), (1, 0)],
    ("pipa.xborder.undisclosed_destination", "temu", "KR", "CN", None): [(3, 0)],
    ("pipa.xborder.undisclosed_destination", "aliexpress", "CN", "RU", None): [(1, 0)],
    ("pipa.xborder.undisclosed_destination", "aliexpress", "CN", "US", None): [(1, 0)],
    ("pipa.xborder.onward_transfer", "aliexpress", "CN", "RU", "ds-1"): [(1, 0)],
    ("pipa.xborder.onward_transfer", "aliexpress", "CN", "US", "ds-2"): [(1, 0)],
    ("pipa.xborder.consent_withdrawn", "temu", "KR", "CN", None): [(2, 0)],
    ("pipa.xborder.stored_in_watch_country", "aliexpress", "KR", "CN", None): [(1, 0)],
    ("pipa.xborder.national_id_abroad", "shein", "KR", "SG", None): [(1, 0)],
    # Shein disclosed contact, name and payment items for Singapore, not RRNs.
    ("pipa.xborder.undisclosed_items", "shein", "KR", "SG", None): [(1, 0)],
    ("pipa.xborder.bulk_volume", "shein", None, "SG", None): [(3, 180000)],
    ("monitor.unresolved_destination", "temu", "KR", None, None): [(1, 0)],
}

# reason -> 1-based lines
EXPECTED_DEAD_LETTERS: dict[str, list[int]] = {
    "invalid_json": [6, 12],
    "not_an_object": [7],
    "unknown_kind": [8],
    "unsupported_version": [9],
    "missing_field:dst_ip": [10],
    "invalid_field:bytes": [11],
    "too_large": [32],
}


def summarize(alerts: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[tuple[int, int]]]:
    """Alerts keyed like EXPECTED_ALERTS, counts sorted by first_seen."""
    out: dict[tuple[Any, ...], list[tuple[str, int, int]]] = {}
    for a in alerts:
        key = (a["rule_id"], a["platform"], a["src_country"], a["dst_country"], a["dataset_id"])
        out.setdefault(key, []).append((a["first_seen"], a["event_count"], a["records"]))
    return {k: [(n, r) for _, n, r in sorted(v)] for k, v in out.items()}
