"""An alert as `build_alert` emits it, for tests of what delivers alerts."""

from __future__ import annotations

from typing import Any, cast

from monitor.alerts.grouping import Alert


def sample_alert(**over: Any) -> Alert:
    """A high-severity alert of one day (storage in China); `over` replaces fields."""
    alert: dict[str, Any] = {
        "alert_id": "0eb004b4dbae4f6c9a1e2d3c4b5a6978",
        "rule_id": "pipa.xborder.stored_in_watch_country",
        "title": "Personal data stored in a watch country",
        "severity": "high",
        "legal_ref": "PIPA Art. 28-8; PIPC inquiry on storage in China",
        "tags": ["pipa", "xborder", "storage"],
        "platform": "aliexpress",
        "src_country": "KR",
        "dst_country": "CN",
        "subject_region": "KR",
        "dataset_id": None,
        "first_seen": "2026-06-17T01:02:03.004Z",
        "last_seen": "2026-06-17T05:06:07.008Z",
        "event_count": 2,
        "bytes": 4096,
        "records": 747,
        "data_categories": ["user.contact.email"],
        "evidence": [
            {
                "event_id": "e-1",
                "ts": "2026-06-17T01:02:03.004Z",
                "source": {"topic": "telemetry.egress", "partition": 0, "offset": 7},
            }
        ],
        "revision": 3,
        "truncated": False,
        "rules_version": "2026.06.1",
        "geoip_build": "2026-06-17",
        "emitted_at": "2026-06-17T05:06:08.000Z",
    }
    alert.update(over)
    return cast(Alert, alert)
