"""Input adapters on public samples (tests/data, see each SOURCE.md) and on hostile variants."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from monitor.contract.attribution import Attributes
from monitor.contract.formats import (
    INVALID_LINE,
    FormatOptions,
    LineAdapter,
    Skipped,
    decode_foreign_messages,
    detect,
)
from monitor.contract.schemas import DeadLetter, KafkaSource, Record

DATA = Path(__file__).resolve().parents[2] / "data"
ACME = FormatOptions(platform="acme")


def feed(fmt: str, lines: list[bytes], options: FormatOptions = ACME) -> list[Any]:
    """What each line became: a Record, a skip, or the reason of its dead letter (None: header)."""
    adapter = LineAdapter(fmt, options)
    out: list[Any] = []
    for number, line in enumerate(lines, 1):
        got = adapter.feed(line, {"file": "f", "line": number})
        out.append(got.reason if isinstance(got, DeadLetter) else got)
    return out


def sample(fmt: str, name: str, options: FormatOptions = ACME) -> list[Any]:
    return feed(fmt, (DATA / fmt / name).read_bytes().splitlines(keepends=True), options)


def flow(r: Any) -> tuple[Any, ...]:
    assert isinstance(r, Record) and r.kind == "egress"
    return (r.ts, r.src_ip, r.dst_ip, r.bytes, r.dst_port, r.protocol, r.platform)


# --- detection -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("vpc-flow", "default-v2.log"),
        ("vpc-flow", "custom-tcp-flags.log"),
        ("zeek-conn", "conn-m57.log"),
        ("zeek-conn", "conn.ndjson"),
        ("ocsf", "security-lake-rc2.ocsf.jsonl"),
        ("ocsf", "azure-nsg-flow.ocsf.jsonl"),
        ("ocsf", "zeek-conn-tenzir.ocsf.jsonl"),
    ],
)
def test_samples_are_detected(fmt: str, name: str) -> None:
    assert detect((DATA / fmt / name).read_bytes().splitlines()[0].strip()) == fmt


@pytest.mark.parametrize(
    "line",
    [
        b'{"kind":"egress","event_id":"e","ts":1,"platform":"p","src_ip":"1.1.1.1","dst_ip":"2.2.2.2","bytes":1}',
        b"[1, 2]",
        b"{not json",
        b"2 123 eni-1 1.1.1.1 2.2.2.2 1 2 6 1 1 1 2 ACCEPT",  # 13 fields
        b"",
    ],
)
def test_anything_else_is_telemetry(line: bytes) -> None:
    assert detect(line) == "telemetry"


# --- VPC flow logs -----------------------------------------------------------------


def test_vpc_default_format_records_and_skips() -> None:
    got = sample("vpc-flow", "default-v2.log")
    assert [g for g in got if isinstance(g, Skipped)] == [
        Skipped("vpc-flow:REJECT"),
        Skipped("vpc-flow:NODATA"),
        Skipped("vpc-flow:SKIPDATA"),
        Skipped("vpc-flow:REJECT"),
    ]
    assert [flow(g) for g in got if isinstance(g, Record)] == [
        (1418530010000, "172.31.16.139", "172.31.16.21", 4249, 22, "tcp", "acme"),
        (1432917027000, "203.0.113.12", "172.31.16.139", 336, 0, "icmp", "acme"),
        (
            1477913708000,
            "2001:db8:1234:a100:8d6e:3477:df66:f105",
            "2001:db8:1234:a102:3304:8879:34cf:4071",
            8855,
            22,
            "tcp",
            "acme",
        ),
    ]
    first = got[0]
    assert isinstance(first, Record)
    assert first.event_id.startswith("vpc-") and first.data_categories == ()
    assert first.subject_region is None  # unknown: not personal, per the contract


def test_vpc_custom_order_from_header() -> None:
    got = sample("vpc-flow", "custom-tcp-flags.log")
    assert got[0] is None  # the header
    assert [flow(g) for g in got[1:]] == [
        (1566848875000, "52.213.180.42", "10.0.0.62", 568, 5001, "tcp", "acme"),
        (1566848875000, "10.0.0.62", "52.213.180.42", 376, 43416, "tcp", "acme"),
        (1566848875000, "52.213.180.42", "10.0.0.62", 100701, 5001, "tcp", "acme"),
        (1566848875000, "10.0.0.62", "52.213.180.42", 632, 43418, "tcp", "acme"),
    ]


def test_vpc_header_with_underscores_and_a_new_header_midway() -> None:
    got = feed(
        "vpc-flow",
        [
            b"version account_id srcaddr dstaddr bytes start log_status\n",
            b"5 123 10.0.0.1 8.8.8.8 10 1700000000 OK\n",
            b"version srcaddr dstaddr start bytes\n",
            b"5 10.0.0.1 8.8.8.8 1700000000 20\n",
        ],
    )
    assert [flow(g)[:4] for g in got if isinstance(g, Record)] == [
        (1700000000000, "10.0.0.1", "8.8.8.8", 10),
        (1700000000000, "10.0.0.1", "8.8.8.8", 20),
    ]


def test_same_line_same_event_id_so_redelivery_is_a_duplicate() -> None:
    line = b"2 1 eni-1 10.0.0.1 8.8.8.8 1 443 6 1 100 1700000000 1700000060 ACCEPT OK"
    a, b = feed("vpc-flow", [line, line + b"\r\n"])
    assert isinstance(a, Record) and isinstance(b, Record) and a.event_id == b.event_id


VPC_OK = (
    b"2 123456789010 eni-1 10.0.0.1 8.8.8.8 40000 443 6 10 4249 1700000000 1700000060 ACCEPT OK"
)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (VPC_OK[:40], INVALID_LINE),  # truncated
        (VPC_OK + b" extra", INVALID_LINE),
        (VPC_OK.replace(b" 4249 ", b" 42x9 "), "invalid_field:bytes"),
        (VPC_OK.replace(b" 4249 ", b" -4249 "), "invalid_field:bytes"),
        (VPC_OK.replace(b" 4249 ", b" 4.5 "), "invalid_field:bytes"),
        (VPC_OK.replace(b" 4249 ", b" - "), "missing_field:bytes"),
        (VPC_OK.replace(b"8.8.8.8", b"8.8.8.888"), "invalid_field:dst_ip"),
        (VPC_OK.replace(b"10.0.0.1", b"10.0.0"), "invalid_field:src_ip"),
        (VPC_OK.replace(b"10.0.0.1", b"2001:db8::g"), "invalid_field:src_ip"),
        (VPC_OK.replace(b" 443 ", b" 70000 "), "invalid_field:dst_port"),
        (VPC_OK.replace(b"1700000000", b"17e8"), "invalid_field:ts"),
        (VPC_OK.replace(b"1700000000", b"99999999999999"), "invalid_field:ts"),
        (VPC_OK.replace(b"10.0.0.1", b"10.0.0.\xff"), "invalid_field:src_ip"),
    ],
)
def test_vpc_hostile_lines_are_dead_letters(line: bytes, reason: str) -> None:
    adapter = LineAdapter("vpc-flow", ACME)
    got = adapter.feed(line + b"\n", {"file": "f", "line": 7})
    assert isinstance(got, DeadLetter)
    assert (got.reason, got.source, got.raw) == (reason, {"file": "f", "line": 7}, line)


def test_without_a_platform_every_flow_is_missing_it() -> None:
    assert feed("vpc-flow", [VPC_OK], FormatOptions()) == ["missing_field:platform"]


def test_attribution_hook_names_the_platform_from_the_flow() -> None:
    seen: list[tuple[str | None, str | None, Mapping[str, str]]] = []

    def attribute(
        src_ip: str | None, service: str | None, own: Mapping[str, str]
    ) -> Attributes | None:
        seen.append((src_ip, service, own))
        return Attributes(platform="temu") if own.get("account-id") == "123456789010" else None

    got = feed("vpc-flow", [VPC_OK], FormatOptions(platform="acme", attribute=attribute))
    assert flow(got[0])[-1] == "temu"
    src_ip, service, own = seen[0]
    assert (src_ip, service, own["interface-id"]) == (flow(got[0])[1], None, "eni-1")


def test_asserted_categories_and_region_make_flows_personal() -> None:
    options = FormatOptions(
        platform="acme", subject_region="KR", data_categories=("user.contact.email",)
    )
    (got,) = feed("vpc-flow", [VPC_OK], options)
    assert isinstance(got, Record)
    assert (got.subject_region, got.data_categories) == ("KR", ("user.contact.email",))


# --- Zeek conn.log -----------------------------------------------------------------


def test_zeek_tsv_sample() -> None:
    got = sample("zeek-conn", "conn-m57.log")
    assert got[:8] == [None] * 8  # the header
    records = got[8:]
    assert [r.event_id for r in records] == [
        "zeek-Cz8F3O3rmUNrd0OxS5",
        "zeek-CeJFOE1CNssyQjfJo1",
        "zeek-CJ5Eva2VOSC05Q4yx7",
        "zeek-Cj9SnC3M3m1jTn34S5",
        "zeek-Cgq2X52qyXxAAi9avc",
        "zeek-Cu0QHL1w6Dp3Z5y0Pg",
        "zeek-CCGBMdPGplqLzQCjg",
    ]
    assert flow(records[0]) == (
        1258531221486,
        "192.168.1.102",
        "192.168.1.1",
        301,
        67,
        "udp",
        "acme",
    )
    # orig_bytes unset: orig_ip_bytes, the same direction with headers.
    assert flow(records[4])[3] == 229
    assert flow(records[6]) == (
        1258532331365,
        "fe80::219:e3ff:fee7:5d23",
        "ff02::fb",
        273,
        5353,
        "udp",
        "acme",
    )


def test_zeek_json_sample() -> None:
    got = sample("zeek-conn", "conn.ndjson")
    assert [flow(g) for g in got] == [
        (1258531221486, "192.168.1.102", "192.168.1.1", 301, 67, "udp", "acme"),
    ]


def test_zeek_json_streaming_time_nested_id_and_empty() -> None:
    got = feed(
        "zeek-conn",
        [
            b'{"_path":"conn","ts":"2018-03-24T17:15:21.255387Z","uid":"C8T","id":{"orig_h":"10.0.0.1","resp_h":"2001:db8::1","resp_p":443},"proto":"tcp","orig_bytes":97}',
        ],
    )
    assert flow(got[0]) == (1521911721255, "10.0.0.1", "2001:db8::1", 97, 443, "tcp", "acme")


ZEEK_HEAD = [
    b"#separator \\x09\n",
    b"#unset_field\t-\n",
    b"#empty_field\t(empty)\n",
    b"#path\tconn\n",
    b"#fields\tts\tuid\tid.orig_h\tid.resp_h\tid.resp_p\tproto\torig_bytes\torig_ip_bytes\n",
]
ZEEK_OK = b"1700000000.5\tCx\t10.0.0.1\t2001:db8::2\t443\ttcp\t10\t50"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (ZEEK_OK[:20], INVALID_LINE),
        (ZEEK_OK + b"\textra", INVALID_LINE),
        (ZEEK_OK.replace(b"\t10\t", b"\tten\t"), "invalid_field:bytes"),
        (ZEEK_OK.replace(b"\t10\t50", b"\t-\t(empty)"), "missing_field:bytes"),
        (ZEEK_OK.replace(b"2001:db8::2", b"2001:db8:::2"), "invalid_field:dst_ip"),
        (ZEEK_OK.replace(b"10.0.0.1", b"-"), "missing_field:src_ip"),
        (ZEEK_OK.replace(b"1700000000.5", b"NaN"), "invalid_field:ts"),
        (ZEEK_OK.replace(b"1700000000.5", b"-1"), "invalid_field:ts"),
        (ZEEK_OK.replace(b"\t443\t", b"\t65536\t"), "invalid_field:dst_port"),
    ],
)
def test_zeek_tsv_hostile_lines(line: bytes, reason: str) -> None:
    assert feed("zeek-conn", [*ZEEK_HEAD, line])[-1] == reason


def test_zeek_tsv_without_fields_or_of_another_log() -> None:
    assert feed("zeek-conn", [ZEEK_OK]) == [INVALID_LINE]
    dns = [*ZEEK_HEAD[:3], b"#path\tdns\n", ZEEK_HEAD[4], ZEEK_OK]
    assert feed("zeek-conn", dns)[-1] == "unknown_kind"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"ts":1700000000.1,"uid":"C1","id.orig_h":"10.0.0.1"', "invalid_json"),
        (b'["conn"]', "not_an_object"),
        (b'{"_path":"dns","ts":1700000000.1,"uid":"C1"}', "unknown_kind"),
        (
            b'{"ts":true,"uid":"C1","id.orig_h":"10.0.0.1","id.resp_h":"1.1.1.1","orig_bytes":1}',
            "invalid_field:ts",
        ),
        (
            b'{"ts":1700000000,"uid":"C1","id.orig_h":"10.0.0.1","id.resp_h":"1.1.1.1","orig_bytes":1.5}',
            "invalid_field:bytes",
        ),
        (
            b'{"ts":1700000000,"uid":"C1","id.orig_h":"10.0.0.1","id.resp_h":"::ffff:1.1.1","orig_bytes":1}',
            "invalid_field:dst_ip",
        ),
    ],
)
def test_zeek_json_hostile_lines(line: bytes, reason: str) -> None:
    assert feed("zeek-conn", [line]) == [reason]


# --- OCSF --------------------------------------------------------------------------

PERSONAL = FormatOptions(
    platform="acme", subject_region="KR", data_categories=("user.contact.email",)
)


def telemetry(r: Any) -> dict[str, Any]:
    """A record as telemetry-v1 JSON would carry it: its kind and the fields it has."""
    assert isinstance(r, Record)
    fields = msgspec.structs.asdict(r).items()
    # Unset: None, no labels, `stores` false; a port 0 is set.
    return {"kind": r.kind} | {k: v for k, v in fields if not (v is None or v is False or v == ())}


def test_ocsf_security_lake_samples() -> None:
    api, vpc, dns = sample("ocsf", "security-lake-rc2.ocsf.jsonl", PERSONAL)
    # API Activity of the 1.0 release candidates (3005), as Security Lake first wrote
    # CloudTrail: the service CloudTrail names, in the event's region, is the
    # endpoint; there is no dst_ip.
    assert telemetry(api) == {
        "kind": "api_call",
        "event_id": "6f4ab5bd-2daa-4d00-be14-d92efEXAMPLE",
        "ts": 1459524708000,
        "platform": "acme",
        "operation": "CreateLoadBalancer",
        "endpoint": "elasticloadbalancing.us-west-2.amazonaws.com",
        "src_ip": "198.51.100.1",
        "subject_region": "KR",
        "data_categories": ("user.contact.email",),
    }
    # No metadata.uid: the id is made from the line; protocol_num 6 is tcp.
    assert telemetry(vpc) == {
        "kind": "egress",
        "event_id": "ocsf-f7d5557a91d7335e32b6a3569925a3bc",
        "ts": 1649721732000,
        "platform": "acme",
        "src_ip": "1.2.3.4",
        "dst_ip": "172.31.2.52",
        "bytes": 50,
        "dst_port": 39938,
        "protocol": "tcp",
        "subject_region": "KR",
        "data_categories": ("user.contact.email",),
    }
    assert dns == "unknown_kind"  # DNS Activity, 4003


@pytest.mark.parametrize(
    ("name", "record"),
    [
        (
            # "protocol_name":"TCP"; OCSF prescribes IANA's lower-case keyword. No
            # bytes_out: traffic.bytes.
            "azure-nsg-flow.ocsf.jsonl",
            {
                "event_id": "ocsf-79ce62f3b174dbaab3cc0c08d010af72",
                "ts": 1705316400000,
                "src_ip": "10.0.1.5",
                "dst_ip": "20.190.151.10",
                "bytes": 60,
                "dst_port": 443,
                "protocol": "tcp",
            },
        ),
        (
            "zeek-conn-tenzir.ocsf.jsonl",
            {
                "event_id": "C1UE8M1G6ok0h7OrJi",
                "ts": 1637156703913,
                "src_ip": "35.87.13.125",
                "dst_ip": "198.71.247.91",
                "bytes": 8,
                "dst_port": 0,
                "protocol": "icmp",
            },
        ),
    ],
)
def test_ocsf_network_activity_samples(name: str, record: dict[str, Any]) -> None:
    (got,) = sample("ocsf", name)
    assert telemetry(got) == {"kind": "egress", "platform": "acme"} | record


def test_ocsf_account_reaches_attribution_in_both_layouts() -> None:
    seen: list[Mapping[str, str]] = []

    def attribute(
        src_ip: str | None, service: str | None, own: Mapping[str, str]
    ) -> Attributes | None:
        seen.append(own)
        return Attributes("temu") if own.get("cloud.account_uid") == "subscription-id" else None

    options = FormatOptions(platform="acme", attribute=attribute)
    vpc = sample("ocsf", "security-lake-rc2.ocsf.jsonl", options)[1]
    (azure,) = sample("ocsf", "azure-nsg-flow.ocsf.jsonl", options)
    assert (flow(vpc)[-1], flow(azure)[-1]) == ("acme", "temu")
    # cloud.account_uid of the release candidates; cloud.account.uid of OCSF 1.0 on.
    assert seen[1] == {
        "cloud.account_uid": "123456789012",
        "cloud.provider": "AWS",
        "product": "Amazon VPC",
    }
    assert seen[-1]["cloud.account_uid"] == "subscription-id"


TENZIR = (DATA / "ocsf" / "zeek-conn-tenzir.ocsf.jsonl").read_bytes().strip()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        # The time as Tenzir printed it: no offset, so no RFC 3339 time.
        (
            TENZIR.replace(b'"time":1637156703913', b'"time":"2021-11-17T13:45:03.913656"'),
            "invalid_field:ts",
        ),
        (TENZIR.replace(b'"bytes_out":8', b'"bytes_out":"8"'), "invalid_field:bytes"),
        (TENZIR.replace(b'"bytes_out":8', b'"bytes_out":8.5'), "invalid_field:bytes"),
        (TENZIR.replace(b'"ip":"198.71.247.91"', b'"ip":3326867291'), "invalid_field:dst_ip"),
        (TENZIR.replace(b"198.71.247.91", b"2001:db8:::5"), "invalid_field:dst_ip"),
        (TENZIR.replace(b'"ip":"35.87.13.125"', b'"ip":null'), "missing_field:src_ip"),
        (TENZIR.replace(b'"protocol_name":"icmp"', b'"protocol_name":1'), "invalid_field:protocol"),
        (TENZIR.replace(b'"port":0', b'"port":-1'), "invalid_field:dst_port"),
    ],
)
def test_ocsf_hostile_variants_of_the_tenzir_sample(line: bytes, reason: str) -> None:
    assert line != TENZIR
    assert feed("ocsf", [line]) == [reason]


def test_ocsf_ipv6_endpoint_is_read_as_any_other() -> None:
    (got,) = feed("ocsf", [TENZIR.replace(b"198.71.247.91", b"2001:db8::5")])
    assert flow(got)[:3] == (1637156703913, "35.87.13.125", "2001:db8::5")


OCSF_NET = (
    b'{"class_uid":4001,"time":1700000000000,"metadata":{"uid":"u1"},'
    b'"src_endpoint":{"ip":"10.0.0.1"},"dst_endpoint":{"ip":"8.8.8.8","port":443},'
    b'"traffic":{"bytes_out":10}}'
)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (OCSF_NET[:50], "invalid_json"),
        (b"42", "not_an_object"),
        (b'{"class_uid":1001}', "unknown_kind"),
        (b'{"class_uid":"4001"}', "unknown_kind"),
        (b'{"time":1}', "missing_field:class_uid"),
        (OCSF_NET.replace(b'"time":1700000000000,', b""), "missing_field:ts"),
        (OCSF_NET.replace(b'"bytes_out":10', b'"bytes_out":-1'), "invalid_field:bytes"),
        (OCSF_NET.replace(b'"bytes_out":10', b'"packets":1'), "missing_field:bytes"),
        (OCSF_NET.replace(b"8.8.8.8", b"8.8.8.8.8"), "invalid_field:dst_ip"),
        (OCSF_NET.replace(b'"port":443', b'"port":"https"'), "invalid_field:dst_port"),
        (b'{"class_uid":6003,"time":1700000000000}', "missing_field:operation"),
        (
            b'{"class_uid":6003,"time":1700000000000,"api":{"operation":"x"}}',
            "missing_field:endpoint",
        ),
    ],
)
def test_ocsf_hostile_events(line: bytes, reason: str) -> None:
    assert feed("ocsf", [line]) == [reason]


def test_ocsf_milliseconds_stay_milliseconds() -> None:
    (got,) = feed("ocsf", [OCSF_NET])
    assert flow(got) == (1700000000000, "10.0.0.1", "8.8.8.8", 10, 443, None, "acme")


def test_no_adapter_for_telemetry() -> None:
    with pytest.raises(ValueError, match="no adapter"):
        LineAdapter("telemetry", ACME)


# --- Kafka messages of a foreign format -------------------------------------------


def test_foreign_messages_each_read_as_its_own_file() -> None:
    at: KafkaSource = {"topic": "flows.vpc", "partition": 0, "offset": 5}
    header = b"version srcaddr dstaddr start bytes log-status\n"
    messages: list[tuple[bytes | None, KafkaSource]] = [
        (VPC_OK, at),
        (
            header + b"5 10.0.0.1 8.8.8.8 1700000000 20 OK\n5 - - 1700000000 - NODATA\n",
            {**at, "offset": 6},
        ),
        # The header of the message before does not carry over.
        (b"5 10.0.0.1 8.8.8.8 1700000000 20 OK", {**at, "offset": 7}),
        (b"", {**at, "offset": 8}),
    ]
    decoded, skipped = decode_foreign_messages(messages, "vpc-flow", ACME)
    assert [flow(r)[3] for r in decoded.records] == [4249, 20]
    assert decoded.sources == [at, {**at, "offset": 6, "index": 1}]
    assert skipped == Counter({"vpc-flow:NODATA": 1})
    assert [(d.reason, d.source, d.raw) for d in decoded.dead_letters] == [
        (INVALID_LINE, {**at, "offset": 7}, b"5 10.0.0.1 8.8.8.8 1700000000 20 OK"),
        ("invalid_json", {**at, "offset": 8}, b""),
    ]


def test_foreign_messages_of_ocsf() -> None:
    at: KafkaSource = {"topic": "ocsf", "partition": 1, "offset": 0}
    decoded, _ = decode_foreign_messages([(OCSF_NET, at), (b"{", at)], "ocsf", ACME)
    assert [r.event_id for r in decoded.records] == ["u1"]
    assert [d.reason for d in decoded.dead_letters] == ["invalid_json"]


def test_zeek_tsv_other_separator_and_concatenated_files() -> None:
    comma = [
        b"#separator \\x2c\n",
        b"#fields,ts,uid,id.orig_h,id.resp_h,orig_bytes\n",
        b"1700000000,C1,10.0.0.1,8.8.8.8,7\n",
    ]
    got = feed("zeek-conn", [*comma, *ZEEK_HEAD, ZEEK_OK])
    assert [flow(g)[:4] for g in got if isinstance(g, Record)] == [
        (1700000000000, "10.0.0.1", "8.8.8.8", 7),
        (1700000000500, "10.0.0.1", "2001:db8::2", 10),
    ]


@pytest.mark.parametrize(
    ("service", "cloud", "endpoint"),
    [
        (
            "s3.amazonaws.com",
            {"provider": "AWS", "region": "ap-northeast-2"},
            "s3.ap-northeast-2.amazonaws.com",
        ),
        (
            "s3.amazonaws.com",
            {"provider": "AWS", "region": "cn-north-1"},
            "s3.cn-north-1.amazonaws.com.cn",
        ),
        # Already a host of a region, another cloud, no region, a region of nonsense: as named.
        (
            "s3.eu-west-1.amazonaws.com",
            {"provider": "AWS", "region": "us-east-1"},
            "s3.eu-west-1.amazonaws.com",
        ),
        (
            "storage.googleapis.com",
            {"provider": "GCP", "region": "asia-northeast3"},
            "storage.googleapis.com",
        ),
        ("s3.amazonaws.com", {"provider": "AWS"}, "s3.amazonaws.com"),
        ("s3.amazonaws.com", {"provider": "AWS", "region": "../x"}, "s3.amazonaws.com"),
    ],
)
def test_an_aws_service_is_called_in_its_region(
    service: str, cloud: dict[str, str], endpoint: str
) -> None:
    event = {
        "class_uid": 6003,
        "time": 1459524708000,
        "metadata": {"uid": "u-1", "version": "1.1.0"},
        "api": {"operation": "PutObject", "service": {"name": service}},
        "cloud": cloud,
    }
    [got] = feed("ocsf", [orjson.dumps(event)])
    assert telemetry(got)["endpoint"] == endpoint
