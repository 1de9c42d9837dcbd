"""Payloads: each format parses back with its own tooling, says no more than the alert, and
the same alert gives the same bytes."""

from __future__ import annotations

from typing import Any, cast

import orjson
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from ocsf.v1_7_0.events import DetectionFinding

from monitor.alerts.grouping import Alert
from monitor.delivery.model import FORMATS, idempotency_key
from monitor.delivery.payloads import (
    CE_SOURCE,
    CE_TYPE,
    OCSF_VERSION,
    ocsf_finding,
    public_alert,
    render,
)
from tests.support.records import NLB, T0, api, egress, of, run

SINGLE = ("native", "cloudevents", "ocsf")
LINK = "https://cases.example.org/alerts/1"
# What the records below carry about people; none of it may reach a payload.
SUBJECT = "subject-4711-secret"
END_USER_IP = "211.234.1.1"


def _alert(**changes: Any) -> Alert:
    records = [
        api(
            "a",
            T0,
            legal_basis="none",
            subject_ids=[SUBJECT],
            purpose="Ü-purpose",
            recipient="Alibaba (China) Co., Ltd.",
        ),
        api("b", T0 + 60_000, legal_basis="none", subject_ids=[SUBJECT]),
        egress("c", T0, END_USER_IP, "47.92.1.1"),
    ]
    (alert,) = of(run(records), NLB)
    alert = {**alert, "emitted_at": "2026-10-01T00:05:00.250Z"}
    return cast("Alert", {**alert, **changes})


def test_native_is_the_alert_as_emitted_plus_the_link() -> None:
    alert = _alert()
    ctype, body = render("native", alert)
    assert ctype == "application/json"
    assert orjson.loads(body) == alert
    _, linked = render("native", alert, link=LINK)
    assert orjson.loads(linked) == {**alert, "link": LINK}


def test_cloudevents_parses_back_with_the_package() -> None:
    alert = _alert(revision=3)
    ctype, body = render("cloudevents", alert, link=LINK)
    assert ctype == "application/cloudevents+json"
    event = from_http(HTTPMessage(headers={"content-type": ctype}, body=body), JSONFormat())
    assert event.get_specversion() == "1.0"
    assert event.get_id() == idempotency_key(alert) == f"{alert['alert_id']}.3"
    assert (event.get_source(), event.get_type()) == (CE_SOURCE, CE_TYPE)
    assert event.get_subject() == alert["rule_id"]
    time = event.get_time()
    assert time is not None and time.isoformat() == "2026-10-01T00:05:00.250000+00:00"
    assert event.get_datacontenttype() == "application/json"
    assert event.get_data() == {**alert, "link": LINK}


def test_ocsf_is_a_valid_detection_finding() -> None:
    alert = _alert(revision=1)
    ctype, body = render("ocsf", alert, link=LINK)
    assert ctype == "application/json"
    finding = DetectionFinding.model_validate_json(body)
    doc = orjson.loads(body)
    assert (doc["class_uid"], doc["category_uid"], doc["type_uid"]) == (2004, 2, 200401)
    assert doc["activity_id"] == 1 and doc["activity_name"] == "Create"
    assert finding.severity_id == 5 and doc["severity"] == "Critical"  # the rule is critical
    info = doc["finding_info"]
    assert info["uid"] == alert["alert_id"] and info["title"] == alert["title"]
    assert info["types"] == [NLB] and info["src_url"] == LINK
    assert (info["first_seen_time"], info["last_seen_time"]) == (T0, T0 + 60_000)
    assert doc["time"] == T0 + 300_250
    assert doc["metadata"]["version"] == OCSF_VERSION
    assert doc["metadata"]["uid"] == idempotency_key(alert)
    assert doc["metadata"]["product"]["name"] == "xborder-monitor"
    unmapped = doc["unmapped"]
    assert unmapped["platform"] == "aliexpress" and unmapped["legal_ref"] == alert["legal_ref"]
    assert unmapped["evidence"] == alert["evidence"]
    countries = {o["name"]: o["value"] for o in doc["observables"] if o["type_id"] == 14}
    assert countries == {"unmapped.src_country": "KR", "unmapped.dst_country": "CN"}


@pytest.mark.parametrize(
    ("severity", "severity_id"), [("low", 2), ("medium", 3), ("high", 4), ("critical", 5)]
)
def test_ocsf_severity_ids(severity: str, severity_id: int) -> None:
    assert ocsf_finding(_alert(severity=severity))["severity_id"] == severity_id


def test_ocsf_keeps_a_severity_it_has_no_level_for() -> None:
    doc = ocsf_finding(_alert(severity="catastrophic"))
    assert (doc["severity_id"], doc["severity"]) == (99, "catastrophic")
    DetectionFinding.model_validate(doc)


def test_ocsf_update_after_the_first_revision() -> None:
    doc = ocsf_finding(_alert(revision=2))
    assert (doc["activity_id"], doc["type_uid"], doc["activity_name"]) == (2, 200402, "Update")
    DetectionFinding.model_validate(doc)


def test_ocsf_an_unresolved_country_is_null_and_no_observable() -> None:
    doc = ocsf_finding(_alert(dst_country=None))
    assert doc["unmapped"]["dst_country"] is None
    assert [o["name"] for o in doc["observables"]] == ["unmapped.src_country"]


def test_ocsf_version_is_the_packages_newest_schema() -> None:
    from ocsf._schema_loader import get_schema_loader

    assert get_schema_loader().get_available_versions()[-1] == OCSF_VERSION


@pytest.mark.parametrize("fmt", SINGLE)
def test_no_personal_data_reaches_a_payload(fmt: Any) -> None:
    alert: dict[str, Any] = dict(_alert())
    # Whatever a dict picked up on its way: none of it is an alert field.
    alert["subject_id"] = SUBJECT
    alert["client_ip"] = "198.51.100.23"
    alert["raw"] = {"email": "someone@example.org"}
    alert["evidence"] = [
        {**e, "subject_ids": [SUBJECT], "source": {**e["source"], "src_ip": END_USER_IP}}
        for e in alert["evidence"]
    ]
    _, body = render(fmt, cast("Alert", alert))
    for leak in (SUBJECT, "198.51.100.23", "someone@example.org", END_USER_IP, "Ü-purpose"):
        assert leak.encode() not in body, (fmt, leak)
    assert b"subject_id" not in body and b"client_ip" not in body


@pytest.mark.parametrize("fmt", SINGLE)
def test_same_alert_same_bytes(fmt: Any) -> None:
    alert = _alert()
    reordered = cast("Alert", dict(reversed(list(alert.items()))))
    first = render(fmt, alert, link=LINK)
    assert render(fmt, alert, link=LINK) == first
    assert render(fmt, reordered, link=LINK) == first


def test_public_alert_keeps_every_spec_field() -> None:
    alert = _alert()
    assert public_alert(alert) == alert
    # span: threshold rules' alerts only.
    assert list(public_alert(alert)) == [k for k in Alert.__annotations__ if k != "span"]


def test_every_format_renders_and_an_unknown_one_is_refused() -> None:
    assert set(SINGLE) | {"alertmanager"} == set(FORMATS)
    content_type, body = render("alertmanager", _alert(), link=LINK)
    (posted,) = orjson.loads(body)
    assert content_type == "application/json"
    assert posted["labels"]["alert_id"] == _alert()["alert_id"]
    assert posted["annotations"]["link"] == LINK
    with pytest.raises(ValueError, match="xml"):
        render("xml", _alert())  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["cloudevents", "ocsf"])
def test_an_alert_without_a_valid_time_is_refused(fmt: Any) -> None:
    with pytest.raises(ValueError, match="emitted_at"):
        render(fmt, _alert(emitted_at="yesterday"))
