"""The simulated stream in the formats `xborder replay` reads besides telemetry-v1.

`FormatWriter(fmt, seed)` turns each telemetry item of the stream into a line
of AWS VPC Flow Logs, Zeek `conn.log` or OCSF, the formats of
`monitor/contract/formats/`, or into nothing where the format cannot carry
the record. The stream itself is the same as in telemetry (same seed, same
records): a format run is the telemetry run as that format sees it.

What each format carries (everything else a record says is lost, as it is
from real flows; the analyst gives it to replay with `--platform`,
`--subject-region` and `--data-category`):

- VPC flow logs: egress only; `src_ip`, `dst_ip`, `bytes`, `dst_port`,
  `protocol` and `ts` in whole seconds (`start`). The version-2 default
  layout, after a header line naming it in a file. No event id: replay
  makes one from the line, so a re-sent duplicate is still one.
- Zeek conn.log: egress only; the same fields, `ts` to the millisecond, and
  an event id `zeek-<uid>` with the uid made from the record's event id. TSV
  with its header in a file; JSON, one object a line, on Kafka, as every
  message is read as its own file there and a TSV header would have to
  travel in each.
- OCSF: egress as Network Activity (4001), with `dst_host` too, and API
  calls as API Activity (6003): `operation`, `endpoint` (its host, which is
  what places a call), `dst_ip`, `src_ip`, `method`, `status`; both with the
  event id (`metadata.uid`) and `ts` to the millisecond. API Activity has no
  place for legal basis, recipient, data categories or subjects.

Consent records are expressible in none; flows carry no API calls.

Invalid items become the format's own malformed lines, with the reason code
replay's adapter gives them: a line cut short or with a field too many
(`invalid_line`, JSON: `invalid_json`), a bad number (`invalid_field:bytes`,
`invalid_field:dst_port`), a bad address or time, an unset byte count
(`missing_field:bytes`), another OCSF class (`unknown_kind`). An invalid
item of a kind the format cannot carry breaks the latest line it did carry
instead, so `--invalid-rate` keeps its meaning.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from monitor.config.disclosures import host_of
from monitor.contract.formats import FORMATS, TELEMETRY
from monitor.contract.formats.common import IP_PROTOCOLS
from monitor.contract.formats.vpc_flow import DEFAULT_FIELDS
from monitor.contract.schemas import parse_ts
from xborder_tools.simulate.model import SimItem

__all__ = ["CARRIES", "FOREIGN", "FormatWriter", "zeek_uid"]

FOREIGN: Final = tuple(f for f in FORMATS if f != TELEMETRY)
# The record kinds each format can express.
CARRIES: Final[Mapping[str, frozenset[str]]] = {
    TELEMETRY: frozenset({"egress", "api_call", "consent"}),
    "vpc-flow": frozenset({"egress"}),
    "zeek-conn": frozenset({"egress"}),
    "ocsf": frozenset({"egress", "api_call"}),
}
_PROTOCOLS: Final = {name: number for number, name in IP_PROTOCOLS.items()}
_ZEEK_FIELDS: Final = (
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("proto", "enum"),
    ("service", "string"),
    ("duration", "interval"),
    ("orig_bytes", "count"),
    ("resp_bytes", "count"),
    ("conn_state", "string"),
    ("local_orig", "bool"),
    ("local_resp", "bool"),
    ("missed_bytes", "count"),
    ("history", "string"),
    ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"),
    ("resp_pkts", "count"),
    ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"),
)
_BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_OCSF_ACTIVITY: Final = {"POST": 1, "GET": 2, "PUT": 3, "PATCH": 3, "DELETE": 4}


def zeek_uid(event_id: str) -> str:
    """A Zeek connection uid (`C` and 17 base-62 digits) made from a record's event id."""
    n = int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=12).digest(), "big")
    digits = []
    for _ in range(17):
        n, d = divmod(n, 62)
        digits.append(_BASE62[d])
    return "C" + "".join(digits)


def _digits(seed: str, n: int) -> str:
    return str(int(hashlib.blake2b(seed.encode(), digest_size=8).hexdigest(), 16))[-n:].zfill(n)


class FormatWriter:
    """One format's lines for the items of a simulated stream.

    `stream`: for Kafka, where each message is read as its own file (no
    header lines; Zeek as JSON). `seed`: how invalid lines break. What the
    format has and telemetry does not (ports, durations) is drawn from the
    record's own id, so a re-sent record is the same line (a VPC record's
    id is a hash of its line). The same seed gives the same lines.
    """

    def __init__(
        self, fmt: str, seed: int = 0, *, stream: bool = False, opened_ms: int = 0
    ) -> None:
        if fmt not in FOREIGN:
            raise ValueError(f"no writer for format {fmt!r}; one of {', '.join(FOREIGN)}")
        self.format = fmt
        self.stream = stream
        self.rng = random.Random(f"{fmt}:{seed}")
        self.carries = CARRIES[fmt]
        self.last: dict[str, Any] | None = None  # the latest record written
        self.opened_ms = opened_ms  # Zeek's #open
        self.latest_ms = opened_ms  # and #close: the latest event time written
        self._encode: Callable[[dict[str, Any]], bytes] = {
            "vpc-flow": self._vpc,
            "zeek-conn": self._zeek_json if stream else self._zeek_tsv,
            "ocsf": self._ocsf,
        }[fmt]

    # -- the file around the lines ----------------------------------------------------------

    def header(self) -> list[bytes]:
        """Lines a file begins with."""
        if self.stream:
            return []
        if self.format == "vpc-flow":
            return [" ".join(DEFAULT_FIELDS).encode()]
        if self.format == "zeek-conn":
            return [
                b"#separator \\x09",
                b"#set_separator\t,",
                b"#empty_field\t(empty)",
                b"#unset_field\t-",
                b"#path\tconn",
                b"#open\t" + _zeek_clock(self.opened_ms),
                b"#fields\t" + "\t".join(name for name, _ in _ZEEK_FIELDS).encode(),
                b"#types\t" + "\t".join(kind for _, kind in _ZEEK_FIELDS).encode(),
            ]
        return []

    def footer(self) -> list[bytes]:
        """Lines a file ends with."""
        if self.format == "zeek-conn" and not self.stream:
            return [b"#close\t" + _zeek_clock(self.latest_ms)]
        return []

    # -- items -------------------------------------------------------------------------------

    def convert(self, item: SimItem) -> SimItem | None:
        """The item as a line of the format; None when the format cannot express it."""
        if item.record is not None:
            if item.kind not in self.carries:
                return None
            self.last = item.record
            self.latest_ms = max(self.latest_ms, _ms(item.record))
            raw = self._encode(item.record)
            return SimItem(item.label, item.kind, raw, item.record, episode=item.episode)
        source = item.source if item.source is not None and item.kind in self.carries else None
        source = source or self.last
        if source is None:
            return None  # nothing expressible to break yet
        raw, reason = self._break(dict(source))
        return SimItem("invalid", source["kind"], raw, reason=reason)

    # -- VPC flow logs -----------------------------------------------------------------------

    def _vpc_fields(self, rec: Mapping[str, Any]) -> dict[str, str]:
        rng = _own_rng(rec)
        start = _ms(rec) // 1000
        size = int(rec["bytes"])
        packets = max(1, size // 1400 + 1)
        account = _digits(f"account:{rec['platform']}", 12)
        eni = hashlib.blake2b(f"{rec['platform']}:{rec.get('service')}".encode(), digest_size=8)
        return {
            "version": "2",
            "account-id": account,
            "interface-id": f"eni-{eni.hexdigest()[:17]}",
            "srcaddr": rec["src_ip"],
            "dstaddr": rec["dst_ip"],
            "srcport": str(rng.randint(32768, 60999)),
            "dstport": str(rec.get("dst_port", 0)),
            "protocol": str(_PROTOCOLS.get(rec.get("protocol", "tcp"), 6)),
            "packets": str(packets),
            "bytes": str(size),
            "start": str(start),
            "end": str(start + rng.randint(1, 60)),
            "action": "ACCEPT",
            "log-status": "OK",
        }

    def _vpc(self, rec: Mapping[str, Any]) -> bytes:
        return " ".join(self._vpc_fields(rec).values()).encode()

    # -- Zeek conn.log -----------------------------------------------------------------------

    def _zeek_fields(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        rng = _own_rng(rec)
        ms = _ms(rec)
        size = int(rec["bytes"])
        packets = max(1, size // 1400 + 1)
        port = int(rec.get("dst_port", 0))
        proto = rec.get("protocol", "tcp")
        service = {443: "ssl", 53: "dns", 9092: None, 4317: "http"}.get(port)
        return {
            "ts": f"{ms // 1000}.{ms % 1000:03d}000",
            "uid": zeek_uid(rec["event_id"]),
            "id.orig_h": rec["src_ip"],
            "id.orig_p": rng.randint(32768, 60999),
            "id.resp_h": rec["dst_ip"],
            "id.resp_p": port,
            "proto": proto,
            "service": service,
            "duration": f"{rng.uniform(0.01, 90):.6f}",
            "orig_bytes": size,
            "resp_bytes": rng.randint(0, 20_000),
            "conn_state": "SF" if proto == "tcp" else "SHR",
            "local_orig": True,
            "local_resp": False,
            "missed_bytes": 0,
            "history": "ShADadFf" if proto == "tcp" else "Dd",
            "orig_pkts": packets,
            "orig_ip_bytes": size + 40 * packets,
            "resp_pkts": packets,
            "resp_ip_bytes": 40 * packets,
            "tunnel_parents": [],
        }

    def _zeek_tsv(self, rec: Mapping[str, Any]) -> bytes:
        return "\t".join(_zeek_text(self._zeek_fields(rec)).values()).encode()

    @staticmethod
    def _zeek_json_line(fields: Mapping[str, Any]) -> bytes:
        obj = {"_path": "conn", **{k: v for k, v in fields.items() if v is not None}}
        ts = obj["ts"]
        if isinstance(ts, str) and ts.replace(".", "", 1).isdigit():
            obj["ts"] = float(ts)  # Zeek's JSON writes epoch seconds as a number
        obj["duration"] = float(obj["duration"])
        if not obj["tunnel_parents"]:
            del obj["tunnel_parents"]
        return orjson.dumps(obj)

    def _zeek_json(self, rec: Mapping[str, Any]) -> bytes:
        return self._zeek_json_line(self._zeek_fields(rec))

    # -- OCSF --------------------------------------------------------------------------------

    def _ocsf_event(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        metadata = {
            "version": "1.4.0",
            "product": {"name": "xborder-simulate", "vendor_name": "xborder"},
            "uid": rec["event_id"],
        }
        cloud = {"provider": "AWS", "account_uid": _digits(f"account:{rec['platform']}", 12)}
        src = {"ip": rec["src_ip"]} if "src_ip" in rec else {}
        if rec["kind"] == "egress":
            dst: dict[str, Any] = {"ip": rec["dst_ip"]}
            if "dst_port" in rec:
                dst["port"] = rec["dst_port"]
            if "dst_host" in rec:
                dst["hostname"] = rec["dst_host"]
            proto = rec.get("protocol", "tcp")
            connection: dict[str, Any] = {"protocol_name": proto, "direction_id": 2}
            if proto in _PROTOCOLS:
                connection["protocol_num"] = _PROTOCOLS[proto]
            return {
                "class_uid": 4001,
                "category_uid": 4,
                "activity_id": 6,
                "type_uid": 400106,
                "severity_id": 1,
                "disposition_id": 1,
                "time": _ms(rec),
                "metadata": metadata,
                "cloud": cloud,
                "src_endpoint": src,
                "dst_endpoint": dst,
                "connection_info": connection,
                "traffic": {
                    "bytes_out": rec["bytes"],
                    "bytes_in": _own_rng(rec).randint(0, 20_000),
                },
            }
        url = urlsplit(rec["endpoint"]) if "://" in rec["endpoint"] else None
        host = host_of(rec["endpoint"]) or rec["endpoint"]
        activity = _OCSF_ACTIVITY.get(rec.get("method", ""), 99)
        event: dict[str, Any] = {
            "class_uid": 6003,
            "category_uid": 6,
            "activity_id": activity,
            "type_uid": 600300 + activity,
            "severity_id": 1,
            "time": _ms(rec),
            "metadata": metadata,
            "cloud": cloud,
            "api": {"operation": rec["operation"], "service": {"name": host}},
            "src_endpoint": src,
            "dst_endpoint": {
                "hostname": host,
                **({"ip": rec["dst_ip"]} if "dst_ip" in rec else {}),
            },
        }
        if url is not None or "method" in rec:
            request: dict[str, Any] = {}
            if "method" in rec:
                request["http_method"] = rec["method"]
            if url is not None:
                request["url"] = {
                    "url_string": rec["endpoint"],
                    "scheme": url.scheme,
                    "hostname": host,
                    "path": url.path,
                }
            event["http_request"] = request
        if "status" in rec:
            event["http_response"] = {"code": rec["status"]}
        return event

    def _ocsf(self, rec: Mapping[str, Any]) -> bytes:
        return orjson.dumps(self._ocsf_event(rec))

    # -- malformed lines ---------------------------------------------------------------------

    def _break(self, rec: dict[str, Any]) -> tuple[bytes, str]:
        rng = self.rng
        if self.format == "ocsf":
            event = self._ocsf_event(rec)
            how = rng.randrange(6)
            if how == 0:
                raw = orjson.dumps(event)
                return raw[: rng.randrange(len(raw) // 3, len(raw) - 1)], "invalid_json"
            if how == 1:
                event["class_uid"] = rng.choice((4002, 3001, "4001", 2004))
                return orjson.dumps(event), "unknown_kind"
            if how == 2:
                del event["class_uid"]
                return orjson.dumps(event), "missing_field:class_uid"
            if how == 3:
                event["time"] = rng.choice(("yesterday", "2026-10-01 10:00:00", -5))
                return orjson.dumps(event), "invalid_field:ts"
            if how == 4 and rec["kind"] == "egress":
                event["traffic"]["bytes_out"] = rng.choice((-1, "1024"))
                return orjson.dumps(event), "invalid_field:bytes"
            if how == 4:
                event["http_response"] = {"code": rng.choice(("200", "OK"))}
                return orjson.dumps(event), "invalid_field:status"
            event["dst_endpoint"]["ip"] = rng.choice(("10.0.0.256", "not-an-ip", "47.92.1"))
            return orjson.dumps(event), "invalid_field:dst_ip"
        if self.format == "vpc-flow":
            fields = self._vpc_fields(rec)
            return self._broken_fields(fields, " ", ("bytes",), "dstport", "srcaddr", "start")
        zeek = self._zeek_fields(rec)
        if self.stream:
            return self._broken_zeek_json(zeek)
        sizes = ("orig_bytes", "orig_ip_bytes")
        return self._broken_fields(_zeek_text(zeek), "\t", sizes, "id.resp_p", "id.orig_h", "ts")

    def _broken_fields(
        self,
        fields: dict[str, str],
        sep: str,
        sizes: tuple[str, ...],
        port: str,
        src: str,
        ts: str,
    ) -> tuple[bytes, str]:
        """A flow line broken one way; `fields` in the line's order, as text; `sizes` the
        byte counts replay reads `bytes` from (the first one set)."""
        rng = self.rng
        how = rng.randrange(7)
        if how == 0:  # cut short: a writer killed mid-line
            line = sep.join(fields.values())
            last = line.rindex(sep)
            return line[: rng.randrange(max(1, last // 2), last)].encode(), "invalid_line"
        if how == 1:  # a field too many, or one lost: the fields cannot be told apart
            values = list(fields.values())
            if rng.random() < 0.5:
                values.insert(rng.randrange(len(values)), rng.choice(("0", "-", "OK")))
            else:
                del values[rng.randrange(1, len(values))]
            return sep.join(values).encode(), "invalid_line"
        if how == 2:
            fields[sizes[0]] = rng.choice(("12k", "-7", "1.5e3", "0x400"))
            reason = "invalid_field:bytes"
        elif how == 3:
            fields[port] = rng.choice(("70000", "65536", "99999"))
            reason = "invalid_field:dst_port"
        elif how == 4:
            fields[src] = rng.choice(("10.0.0.256", "not-an-ip", "211.234.1"))
            reason = "invalid_field:src_ip"
        elif how == 5:
            fields[ts] = rng.choice(("yesterday", "1e99x", "2026-10-01"))
            reason = "invalid_field:ts"
        else:  # unset: "-" in both formats
            for name in sizes:
                fields[name] = "-"
            reason = "missing_field:bytes"
        return sep.join(fields.values()).encode(), reason

    def _broken_zeek_json(self, fields: dict[str, Any]) -> tuple[bytes, str]:
        rng = self.rng
        how = rng.randrange(5)
        if how == 0:
            raw = self._zeek_json_line(fields)
            return raw[: rng.randrange(len(raw) // 3, len(raw) - 1)], "invalid_json"
        if how == 1:
            fields["orig_bytes"] = rng.choice((-7, 1.5, "12k"))
            return self._zeek_json_line(fields), "invalid_field:bytes"
        if how == 2:
            fields["id.resp_p"] = rng.choice((70000, -1))
            return self._zeek_json_line(fields), "invalid_field:dst_port"
        if how == 3:
            fields["id.orig_h"] = rng.choice(("10.0.0.256", "not-an-ip"))
            return self._zeek_json_line(fields), "invalid_field:src_ip"
        # A shipper that wraps the object in an array.
        return b"[" + self._zeek_json_line(fields) + b"]", "not_an_object"


def _own_rng(rec: Mapping[str, Any]) -> random.Random:
    """The draws of what a format has and the record does not (ports, durations): the
    record's own, so a re-sent record is the same line, as replay's duplicates are."""
    return random.Random(f"{rec['platform']}:{rec['event_id']}")


def _zeek_clock(ms: int) -> bytes:
    """Zeek's header time: local time as it writes it, UTC here."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%d-%H-%M-%S").encode()


def _ms(rec: Mapping[str, Any]) -> int:
    ms = parse_ts(rec["ts"])
    if ms is None:
        raise ValueError(f"record {rec.get('event_id')!r}: no event time")
    return ms


def _zeek_text(fields: Mapping[str, Any]) -> dict[str, str]:
    """Zeek's TSV text of each field: `-` unset, `(empty)` an empty set, `T`/`F`."""

    def text(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "T" if v else "F"
        if isinstance(v, list):
            return ",".join(v) or "(empty)"
        return str(v)

    return {name: text(fields[name]) for name, _ in _ZEEK_FIELDS}
