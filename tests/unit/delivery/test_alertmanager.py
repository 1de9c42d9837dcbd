import re
import time

import orjson

from monitor.alerts.grouping import iso_ms
from monitor.delivery.alertmanager import (
    DEFAULT_RESOLVE_AFTER_S,
    render_alertmanager,
    to_alertmanager,
)
from tests.support.alert_sample import sample_alert

LINK = "https://cases.example.org/alerts/0eb004b4dbae4f6c9a1e2d3c4b5a6978"
# 2026-06-17T06:00:00Z, an hour after the sample's last record.
NOW_MS = 1781676000000
HOUR_S = 3600
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def test_labels_identify_the_finding() -> None:
    [posted] = to_alertmanager(sample_alert(), link=LINK, resolve_after_s=HOUR_S, now_ms=NOW_MS)
    assert posted["labels"] == {
        "alertname": "XborderFinding",
        "alert_id": "0eb004b4dbae4f6c9a1e2d3c4b5a6978",
        "rule_id": "pipa.xborder.stored_in_watch_country",
        "severity": "high",
        "platform": "aliexpress",
        "src_country": "KR",
        "dst_country": "CN",
        "source": "xborder-monitor",
    }
    assert all(LABEL_NAME.fullmatch(k) for k in posted["labels"])


def test_annotations_carry_what_a_case_officer_reads_and_the_link() -> None:
    [posted] = to_alertmanager(sample_alert(), link=LINK, resolve_after_s=HOUR_S, now_ms=NOW_MS)
    notes = posted["annotations"]
    assert notes["title"] == "Personal data stored in a watch country"
    assert notes["legal_ref"] == "PIPA Art. 28-8; PIPC inquiry on storage in China"
    assert notes["summary"] == (
        "2 events, 747 records, 4096 bytes"
        " from 2026-06-17T01:02:03.004Z to 2026-06-17T05:06:07.008Z"
    )
    assert notes["revision"] == "3"
    assert notes["link"] == LINK
    assert posted["generatorURL"] == LINK


def test_labels_stay_the_same_across_revisions() -> None:
    """A later revision updates the alert Alertmanager holds (same fingerprint)."""
    first = sample_alert(revision=1, event_count=1, last_seen="2026-06-17T01:02:03.004Z")
    later = sample_alert(revision=9, event_count=40, records=9000)
    [a] = to_alertmanager(first, link=LINK, resolve_after_s=HOUR_S, now_ms=NOW_MS)
    [b] = to_alertmanager(later, link=LINK, resolve_after_s=HOUR_S, now_ms=NOW_MS + 60_000)
    assert a["labels"] == b["labels"]
    assert a["annotations"]["summary"] != b["annotations"]["summary"]


def test_fields_a_rule_does_not_group_by_are_left_out() -> None:
    alert = sample_alert(platform=None, dst_country=None, src_country="")
    [posted] = to_alertmanager(alert, link=None, resolve_after_s=HOUR_S, now_ms=NOW_MS)
    assert {"platform", "src_country", "dst_country"}.isdisjoint(posted["labels"])
    assert "" not in posted["labels"].values()
    assert "link" not in posted["annotations"] and "generatorURL" not in posted


def test_starts_at_first_record_and_ends_after_now() -> None:
    [posted] = to_alertmanager(sample_alert(), link=LINK, resolve_after_s=HOUR_S, now_ms=NOW_MS)
    assert posted["startsAt"] == "2026-06-17T01:02:03.004Z"
    assert posted["endsAt"] == iso_ms(NOW_MS + HOUR_S * 1000) == "2026-06-17T07:00:00.000Z"


def test_an_old_alert_delivered_late_still_arrives_active() -> None:
    a_week_later = NOW_MS + 7 * 24 * HOUR_S * 1000
    [posted] = to_alertmanager(
        sample_alert(), link=LINK, resolve_after_s=HOUR_S, now_ms=a_week_later
    )
    assert posted["endsAt"] == iso_ms(a_week_later + HOUR_S * 1000)


def test_records_ahead_of_the_clock_never_end_before_they_start() -> None:
    ahead = sample_alert(
        first_seen="2026-06-17T08:00:00.000Z", last_seen="2026-06-17T09:00:00.000Z"
    )
    [posted] = to_alertmanager(ahead, link=LINK, resolve_after_s=0, now_ms=NOW_MS)
    assert posted["endsAt"] == "2026-06-17T09:00:00.000Z" >= posted["startsAt"]


def test_truncated_counts_are_said() -> None:
    [posted] = to_alertmanager(
        sample_alert(truncated=True), link=LINK, resolve_after_s=HOUR_S, now_ms=NOW_MS
    )
    assert "saturated" in posted["annotations"]["summary"]


def test_no_evidence_or_personal_data_in_the_payload() -> None:
    content_type, body = render_alertmanager(sample_alert(), LINK)
    assert "e-1" not in body.decode() and "telemetry.egress" not in body.decode()
    assert content_type == "application/json"


def test_render_is_a_postable_alerts_array_active_for_a_day_from_now() -> None:
    before = int(time.time() * 1000)
    content_type, body = render_alertmanager(sample_alert(), link=LINK)
    after = int(time.time() * 1000)
    assert content_type == "application/json"
    [posted] = orjson.loads(body)
    assert set(posted) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert all(isinstance(v, str) for v in posted["labels"].values())
    assert all(isinstance(v, str) for v in posted["annotations"].values())
    day_ms = DEFAULT_RESOLVE_AFTER_S * 1000
    assert iso_ms(before + day_ms) <= posted["endsAt"] <= iso_ms(after + day_ms)
