"""An alert as the body a receiver asked for: native JSON, CloudEvents or OCSF.

Pure: the same alert (and link) gives the same bytes, so a retry carries the
body that was signed the first time and a receiver may compare bodies. Every
format is built from `public_alert`, which keeps the fields the detections
spec names and nothing else: whatever else a dict picked up on its way (a
subject id, an end user's address, record content) never reaches a receiver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import orjson
from cloudevents.core.bindings.http import to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from monitor import __version__
from monitor.alerts.grouping import Alert
from monitor.contract.schemas import parse_ts
from monitor.delivery import alertmanager
from monitor.delivery.model import Format, idempotency_key

__all__ = [
    "CE_SOURCE",
    "CE_TYPE",
    "CONTENT_TYPES",
    "OCSF_VERSION",
    "PRODUCT",
    "ocsf_finding",
    "public_alert",
    "render",
]

PRODUCT: Final = "xborder-monitor"

# CloudEvents: `source` + `id` is what a consumer deduplicates by, so the id is
# the idempotency key (alert id and revision). The type is not reverse DNS: the
# project owns no domain to put there, and an invented one would suggest it did.
# A change to the alert's fields that breaks readers gets a new type (`.v2`).
CE_SOURCE: Final = PRODUCT
CE_TYPE: Final = "xborder.alert.v1"

# The schema version of the pydantic-ocsf module imported in `ocsf_finding`;
# they change together (a test holds this to the package's newest schema).
OCSF_VERSION: Final = "1.7.0"
OCSF_CATEGORY_FINDINGS: Final = 2
OCSF_CLASS_DETECTION_FINDING: Final = 2004
_OCSF_SEVERITY: Final = {"low": 2, "medium": 3, "high": 4, "critical": 5}
_OCSF_OTHER: Final = 99
_OCSF_COUNTRY: Final = 14  # observable type_id
# What OCSF has no attribute for travels under `unmapped`, named as in the alert.
_OCSF_UNMAPPED: Final = (
    "platform", "src_country", "dst_country", "dst_orgs", "subject_region", "dataset_id",
    "legal_ref", "revision", "truncated", "bytes", "records", "data_categories",
    "rules_version", "geoip_build", "evidence",
)  # fmt: skip

CONTENT_TYPES: Final[Mapping[Format, str]] = {
    "native": "application/json",
    "cloudevents": JSONFormat.CONTENT_TYPE,
    "ocsf": "application/json",
    "alertmanager": alertmanager.CONTENT_TYPE,
}

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ALERT_FIELDS: Final = tuple(Alert.__annotations__)
_SOURCE_FIELDS: Final = ("topic", "partition", "offset", "index", "file", "line")


def _ref(ref: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: ref[k] for k in ("event_id", "ts") if k in ref}
    if "source" in ref:
        out["source"] = {k: ref["source"][k] for k in _SOURCE_FIELDS if k in ref["source"]}
    if "first_hop" in ref:
        out["first_hop"] = _ref(ref["first_hop"])
    if "via" in ref:
        out["via"] = [_ref(v) for v in ref["via"]]
    return out


def public_alert(alert: Alert) -> Alert:
    """The alert's spec fields in the spec's order; evidence as references only."""
    given: Mapping[str, Any] = alert
    out = {k: given[k] for k in _ALERT_FIELDS if k in given}
    if "evidence" in out:
        out["evidence"] = [_ref(e) for e in out["evidence"]]
    return cast("Alert", out)


def _native_doc(alert: Alert, link: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = dict(public_alert(alert))
    if link is not None:
        doc["link"] = link
    return doc


def _epoch_ms(alert: Mapping[str, Any], field: str) -> int:
    ms = parse_ts(alert[field])
    if ms is None:
        raise ValueError(f"alert {alert['alert_id']}: {field} is not an RFC 3339 time")
    return ms


def _native(alert: Alert, link: str | None) -> bytes:
    return orjson.dumps(_native_doc(alert, link))


def _cloudevents(alert: Alert, link: str | None) -> bytes:
    emitted = _EPOCH + timedelta(milliseconds=_epoch_ms(alert, "emitted_at"))
    event = CloudEvent(
        {
            "specversion": "1.0",
            "id": idempotency_key(alert),
            "source": CE_SOURCE,
            "type": CE_TYPE,
            "subject": alert["rule_id"],
            "time": emitted,
            "datacontenttype": "application/json",
        },
        _native_doc(alert, link),
    )
    return to_structured(event, JSONFormat()).body


def ocsf_finding(alert: Alert, link: str | None = None) -> dict[str, Any]:
    """The alert as an OCSF Detection Finding, validated by pydantic-ocsf's model."""
    # Imported here: the package builds its models on first import (about half
    # a second), which a receiver of the other formats should not wait for.
    from ocsf.v1_7_0.events import DetectionFinding

    a: Mapping[str, Any] = public_alert(alert)
    activity = 1 if a["revision"] == 1 else 2  # Create, then Update
    severity = _OCSF_SEVERITY.get(a["severity"], _OCSF_OTHER)
    unmapped = {k: a[k] for k in _OCSF_UNMAPPED if k in a}
    finding: dict[str, Any] = {
        "activity_id": activity,
        "category_uid": OCSF_CATEGORY_FINDINGS,
        "category_name": "Findings",
        "class_uid": OCSF_CLASS_DETECTION_FINDING,
        "class_name": "Detection Finding",
        "type_uid": OCSF_CLASS_DETECTION_FINDING * 100 + activity,
        "severity_id": severity,
        "time": _epoch_ms(a, "emitted_at"),
        "start_time": _epoch_ms(a, "first_seen"),
        "end_time": _epoch_ms(a, "last_seen"),
        "count": a["event_count"],
        "message": a["title"],
        "is_alert": True,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": idempotency_key(alert),
            "correlation_uid": a["alert_id"],
            "labels": list(a["tags"]),
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": __version__},
        },
        "finding_info": {
            "uid": a["alert_id"],
            "title": a["title"],
            "types": [a["rule_id"]],
            "first_seen_time": _epoch_ms(a, "first_seen"),
            "last_seen_time": _epoch_ms(a, "last_seen"),
        },
        "observables": [
            {"name": f"unmapped.{k}", "type_id": _OCSF_COUNTRY, "value": a[k]}
            for k in ("src_country", "dst_country")
            if a.get(k)
        ],
        "unmapped": unmapped,
    }
    if severity == _OCSF_OTHER:
        # A pack's own severity: kept as said, since no OCSF level means it.
        finding["severity"] = a["severity"]
    if link is not None:
        finding["finding_info"]["src_url"] = link
    model = DetectionFinding.model_validate(finding)
    # exclude_unset: what the model fills in (labels of ids) stays, and so do
    # the nulls set on purpose (an unresolved country is null, as in the alert).
    return model.model_dump(mode="json", exclude_unset=True)


def _ocsf(alert: Alert, link: str | None) -> bytes:
    return orjson.dumps(ocsf_finding(alert, link))


# A format adds its function here and its CONTENT_TYPES entry. Alertmanager's
# body (its v2 API's list of alerts) is built by its own module.
_RENDERERS: Final[Mapping[Format, Callable[[Alert, str | None], bytes]]] = {
    "native": _native,
    "cloudevents": _cloudevents,
    "ocsf": _ocsf,
    "alertmanager": lambda alert, link: alertmanager.render_alertmanager(alert, link)[1],
}


def render(fmt: Format, alert: Alert, *, link: str | None = None) -> tuple[str, bytes]:
    """(content type, body) of one alert in a receiver's format.

    `link`, when given, points a case officer at the alert elsewhere (a case or
    a dashboard); it travels as `link` (native, CloudEvents data) or as
    `finding_info.src_url` (OCSF). ValueError for a format rendered elsewhere
    or unknown, and for an alert whose times are not RFC 3339.
    """
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(f"format {fmt!r} is not rendered one alert at a time by this module")
    return CONTENT_TYPES[fmt], renderer(alert, link)
