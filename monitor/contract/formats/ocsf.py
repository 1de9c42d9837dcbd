"""OCSF 1.x events, one JSON object a line, to telemetry-v1 records.

Network Activity (`class_uid` 4001) is an `egress` record:
`src_endpoint.ip` -> `src_ip`, `dst_endpoint.ip` -> `dst_ip`,
`dst_endpoint.port` -> `dst_port`, `dst_endpoint.hostname` -> `dst_host`,
`connection_info.protocol_name` lower-cased (OCSF prescribes IANA's
lower-case keyword; some producers write `TCP`, `UDP`), else
`protocol_num` as a name -> `protocol`, `traffic.bytes_out` (bytes
from source to destination) -> `bytes`, or `traffic.bytes` when the
producer counted one direction only and left `bytes_out` out.

API Activity (`class_uid` 6003; 3005, its number in the 1.0 release
candidates, is read the same) is an `api_call` record: `api.operation` ->
`operation`, the endpoint is `dst_endpoint.hostname`, else
`http_request.url.hostname`, else `api.service.name` (a cloud API names
its service host there), `dst_endpoint.ip` -> `dst_ip`, `src_endpoint.ip`
-> `src_ip`, `http_request.http_method` -> `method`,
`http_response.code` -> `status`.

Both: `time` (epoch milliseconds, OCSF's timestamp; `start_time` when
`time` is absent; a number below 10^11 is read as seconds, see
`_event_time`) -> `ts`,
`metadata.uid` -> `event_id` (made from the line when absent), and the
platform from `FormatOptions`, as OCSF names the product that logged the
event, not the platform whose data moved. The attribution hook gets
`cloud.account_uid` (the account: `cloud.account.uid` of OCSF 1.0 and
later, `cloud.account_uid` of the release candidates Security Lake first
wrote), `cloud.provider` and `product` (`metadata.product.name`) as its labels, and
`src_endpoint.svc_name` as the flow's service name (the service registry).

Decisions:
- the event is read as JSON, not through the `ocsf` package's models: a
  model refuses an event for any of the many fields the monitor does not
  read (a missing `severity_id`, a release candidate's `metadata.version`),
  and the contract's check already refuses what the monitor does read;
- a blocked flow (`disposition_id` 2, `action_id` 2, or activity Refuse,
  `activity_id` 5 of Network Activity) moved no data: skipped and counted
  (`ocsf:blocked`), as a `REJECT` VPC flow is;
- other classes are `unknown_kind`; a missing or non-integer `class_uid`
  is `missing_field:class_uid` / `unknown_kind`.
"""

from __future__ import annotations

import re
from typing import Any, Final

from monitor.contract.formats.common import (
    IP_PROTOCOLS,
    FormatOptions,
    Skipped,
    checked,
    epoch_seconds_ms,
    json_object,
    line_id,
)
from monitor.contract.schemas import Record

__all__ = ["API_ACTIVITY", "NAME", "NETWORK_ACTIVITY", "convert"]

NAME: Final = "ocsf"
NETWORK_ACTIVITY: Final = 4001
API_ACTIVITY: Final = 6003
_API_ACTIVITY_RC: Final = 3005
_BLOCKED: Final = 2  # disposition_id Blocked, action_id Denied
_REFUSE: Final = 5  # Network Activity's activity_id Refuse
# 10^11: 1973-03-03 as milliseconds, the year 5138 as seconds.
_SECONDS_BELOW: Final = 100_000_000_000


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def _event_time(value: Any) -> Any:
    """OCSF's epoch milliseconds; a number too small for them read as seconds.

    Producers write seconds where OCSF wants milliseconds (the schema's own
    examples do); read as milliseconds, such a time falls in the first weeks
    of 1970, and every window of the rules goes wrong without a word.
    """
    if type(value) in (int, float) and 0 <= value < _SECONDS_BELOW:
        return epoch_seconds_ms(value)
    return value


def convert(raw: bytes, options: FormatOptions) -> Record | Skipped | str:
    """One OCSF event (a stripped line) as a Record, a skip, or a reason code."""
    event = json_object(raw)
    if isinstance(event, str):
        return event
    class_uid = event.get("class_uid")
    if class_uid is None:
        return "missing_field:class_uid"
    obj: dict[str, Any] = {}
    if class_uid == NETWORK_ACTIVITY and type(class_uid) is int:
        if (
            _BLOCKED in (event.get("disposition_id"), event.get("action_id"))
            or event.get("activity_id") == _REFUSE
        ):
            return Skipped(f"{NAME}:blocked")
        obj["kind"] = "egress"
    elif class_uid in (API_ACTIVITY, _API_ACTIVITY_RC) and type(class_uid) is int:
        obj["kind"] = "api_call"
    else:
        return "unknown_kind"
    uid = _get(event, "metadata", "uid")
    obj["event_id"] = uid if isinstance(uid, str) and uid else line_id("ocsf", raw)
    _put(obj, "ts", _event_time(event.get("time", event.get("start_time"))))
    _put(obj, "src_ip", _get(event, "src_endpoint", "ip"))
    _put(obj, "dst_ip", _get(event, "dst_endpoint", "ip"))
    if obj["kind"] == "egress":
        traffic = event.get("traffic")
        sent = _get(traffic, "bytes_out")
        _put(obj, "bytes", sent if sent is not None else _get(traffic, "bytes"))
        _put(obj, "dst_port", _get(event, "dst_endpoint", "port"))
        _put(obj, "dst_host", _get(event, "dst_endpoint", "hostname"))
        protocol = _get(event, "connection_info", "protocol_name")
        if isinstance(protocol, str):
            protocol = protocol.lower()
        elif protocol is None:
            number = _get(event, "connection_info", "protocol_num")
            protocol = IP_PROTOCOLS.get(number, str(number)) if type(number) is int else None
        _put(obj, "protocol", protocol)
    else:
        _put(obj, "operation", _get(event, "api", "operation"))
        endpoint = _get(event, "dst_endpoint", "hostname") or _get(
            event, "http_request", "url", "hostname"
        )
        if not endpoint:
            endpoint = _regional(_get(event, "api", "service", "name"), event.get("cloud"))
        _put(obj, "endpoint", endpoint)
        _put(obj, "method", _get(event, "http_request", "http_method"))
        _put(obj, "status", _get(event, "http_response", "code"))
    account = _get(event, "cloud", "account", "uid")  # OCSF 1.0 on
    if not (isinstance(account, str) and account):
        account = _get(event, "cloud", "account_uid")  # the release candidates
    own = {
        key: value
        for key, value in (
            ("cloud.account_uid", account),
            ("cloud.provider", _get(event, "cloud", "provider")),
            ("product", _get(event, "metadata", "product", "name")),
        )
        if isinstance(value, str)
    }
    service = _get(event, "src_endpoint", "svc_name")
    return checked(obj, raw, options, own, service if isinstance(service, str) else None)


# An AWS region as CloudTrail names it (`us-west-2`, `ap-northeast-2`, `cn-north-1`).
_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
_AWS = ".amazonaws.com"


def _regional(service: object, cloud: object) -> object:
    """An AWS service name (CloudTrail's `eventSource`) as the endpoint of the event's region.

    CloudTrail names the service, `elasticloadbalancing.amazonaws.com`, not
    the host called; the call went to that service in the event's region,
    whose endpoint is `<service>.<region>.amazonaws.com` (`.com.cn` in
    China), which the endpoint registry places by its region suffix. Global
    services are logged in us-east-1, where they run. Anything else stays as
    it was.
    """
    region = _get(cloud, "region")
    if (
        not isinstance(service, str)
        or not service.endswith(_AWS)
        or _get(cloud, "provider") != "AWS"
        or not isinstance(region, str)
        or not _AWS_REGION.fullmatch(region)
    ):
        return service
    name = service.removesuffix(_AWS)
    if "." in name:  # already a regional or other host
        return service
    return f"{name}.{region}{_AWS}" + (".cn" if region.startswith("cn-") else "")
