"""Records built in code, and the shared detection core run over them (replay's detector).

`api` and `egress` make contract records of a Korean platform sending personal
data abroad; `run` puts them through `LocalDetector` with a static GeoIP (`GEO`)
and the bundled pack, and returns the open alerts.
"""

from __future__ import annotations

from typing import Any

import orjson

from monitor.alerts.grouping import Alert
from monitor.contract.decode import decode_line
from monitor.contract.schemas import Record
from monitor.detect.local import LocalDetector
from monitor.engine.model import RulePack
from monitor.geo.resolve import Resolver, StaticLookup
from tests.support.pack import ENDPOINTS, PACK

T0 = 1790812800000
H = 3_600_000
GEO = {"211.234.1.1": "KR", "47.92.1.1": "CN", "8.219.1.1": "SG", "5.45.200.1": "RU"}
NLB = "pipa.xborder.no_legal_basis"
BULK = "pipa.xborder.bulk_volume"


def api(eid: str, ts: int, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "api_call",
        "event_id": eid,
        "ts": ts,
        "platform": "aliexpress",
        "operation": "orders.export",
        "endpoint": "api.example.cn",
        "dst_ip": "47.92.1.1",
        "src_country": "KR",
        "subject_region": "KR",
        "data_categories": ["user.contact"],
        **extra,
    }


def egress(eid: str, ts: int, src: str, dst: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "egress",
        "event_id": eid,
        "ts": ts,
        "platform": "aliexpress",
        "src_ip": src,
        "dst_ip": dst,
        "bytes": 10,
        "subject_region": "KR",
        "data_categories": ["user.contact"],
        **extra,
    }


def run(records: list[dict[str, Any]], pack: RulePack = PACK) -> list[Alert]:
    detector = LocalDetector(pack, Resolver(StaticLookup(GEO), ENDPOINTS), clock=lambda: 0.0)
    for i, obj in enumerate(records):
        got = decode_line(orjson.dumps(obj), {"file": "t", "line": i + 1})
        assert isinstance(got, Record), got
        detector.process(got, {"file": "t", "line": i + 1})
    return [detector.alert(r, g) for r, g in detector.open_groups()]


def of(alerts: list[Alert], rule: str) -> list[Alert]:
    return sorted((a for a in alerts if a["rule_id"] == rule), key=lambda a: a["first_seen"])
