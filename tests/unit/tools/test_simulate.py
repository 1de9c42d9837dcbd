"""The simulator: deterministic, contract-valid, lawful unless told otherwise, every
injected violation caught by its rule in the real detection core, and all of that under
whatever configuration the monitor reads (long lawful streams: tests/robustness/)."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import shutil
import textwrap
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.cli.main import main
from monitor.config.disclosures import Certification
from monitor.config.runtime import Runtime, load_config
from monitor.config.settings import Settings, default_rules_dir
from monitor.contract.decode import decode_line, decode_message
from monitor.contract.schemas import DeadLetter, Record, parse_ts
from tests.support.geoip_build import TEST_NETWORKS, build_country_db
from tests.support.simulation import START, detect, simulation_runtime
from xborder_tools.simulate import (
    ALSO_FIRES,
    BUILTIN_NETWORKS,
    INVALID_REASONS,
    RULE_OF,
    VIOLATIONS,
    KafkaSink,
    SimConfig,
    SimStats,
    generate,
    generate_items,
    load_world,
    networks_from_geoip,
)
from xborder_tools.simulate.traffic import GEOIP_ONLY_HOSTS

QUIET: dict[str, Any] = {"violation_rates": {}, "invalid_rate": 0.0, "duplicate_rate": 0.0}


@pytest.fixture(scope="module")
def geo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_country_db(tmp_path_factory.mktemp("sim") / "country.mmdb", TEST_NETWORKS)


@pytest.fixture(scope="module")
def runtime(geo_db: Path) -> Iterator[Runtime]:
    yield from simulation_runtime(geo_db)


# --- determinism and shape ------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    cfg = SimConfig(seed=11, count=3000, start_ms=START)
    a = [i.raw for i in generate_items(cfg)]
    b = [i.raw for i in generate_items(cfg)]
    c = [i.raw for i in generate_items(dataclasses.replace(cfg, seed=12))]
    assert a == b
    assert len(a) == 3000
    assert a != c


def test_generate_yields_the_valid_records_of_the_stream() -> None:
    cfg = SimConfig(seed=3, count=2000, start_ms=START, invalid_rate=50.0, duplicate_rate=20.0)
    items = list(generate_items(cfg))
    records = list(generate(cfg))
    assert records == [i.record for i in items if i.valid]
    assert len(records) < len(items)  # invalid items are left out
    for item in items:
        if item.valid:
            assert orjson.loads(item.raw) == item.record


def test_every_record_valid_and_every_invalid_one_gets_its_reason() -> None:
    cfg = SimConfig(seed=5, count=6000, start_ms=START, invalid_rate=60.0, duplicate_rate=10.0)
    families: Counter[str] = Counter()
    for line, item in enumerate(generate_items(cfg), 1):
        got = decode_line(item.raw, {"file": "f", "line": line})
        assert b"\n" not in item.raw
        if item.reason is None:
            assert isinstance(got, Record), (item.label, got)
            assert got.kind == item.kind
        else:
            assert isinstance(got, DeadLetter)
            assert got.reason == item.reason, item.raw
            families[item.reason.split(":")[0]] += 1
    assert set(families) == set(INVALID_REASONS)


def test_event_time_ids_subjects_and_both_timestamp_forms() -> None:
    items = list(generate_items(SimConfig(seed=8, count=5000, start_ms=START)))
    valid = [i for i in items if i.valid and i.label != "duplicate"]
    assert all(i.record is not None for i in valid)
    recs = [i.record for i in valid if i.record is not None]
    # Unique event ids per platform (duplicates are the only repeats).
    ids = Counter((r["platform"], r["event_id"]) for r in recs)
    assert max(ids.values()) == 1
    dups = [i for i in items if i.label == "duplicate"]
    assert dups and all((i.record or {})["event_id"] in {r["event_id"] for r in recs} for i in dups)
    # Both timestamp forms, RFC 3339 in KST or UTC.
    forms = Counter(type(r["ts"]).__name__ for r in recs)
    assert forms["int"] > 100 and forms["str"] > 100
    assert any(isinstance(r["ts"], str) and r["ts"].endswith("+09:00") for r in recs)
    times = [t for t in (parse_ts(r["ts"]) for r in recs) if t is not None]
    assert len(times) == len(recs)
    assert 0 < times[0] - START < 60_000
    # Event time advances: only late first hops of onward episodes go back.
    backwards = [valid[k] for k in range(1, len(valid)) if times[k] < times[k - 1]]
    assert all(i.label == "onward_transfer" for i in backwards)
    subjects = [r["subject_id"] for r in recs if r["kind"] == "consent"]
    subjects += [s for r in recs for s in r.get("subject_ids", [])]
    assert subjects and all(re.fullmatch(r"u-[0-9a-f]{16}", s) for s in subjects)


def test_addresses_come_from_the_pools_with_some_ipv6() -> None:
    nets = [ipaddress.ip_network(n) for ns in BUILTIN_NETWORKS.values() for n in ns]
    seen6 = 0
    for rec in generate(SimConfig(seed=9, count=3000, start_ms=START, **QUIET)):
        for key in ("src_ip", "dst_ip"):
            if key in rec:
                addr = ipaddress.ip_address(rec[key])
                seen6 += addr.version == 6
                assert addr.is_private or any(addr in n for n in nets), rec[key]
    assert seen6 > 50


def test_the_world_is_the_configuration_the_monitor_reads() -> None:
    world = load_world()
    _, disclosures, endpoints = load_config(Settings.from_env())
    assert world.platforms == tuple(disclosures.by_platform) == ("aliexpress", "temu", "shein")
    assert world.disclosed == disclosures.by_platform
    assert world.endpoints == endpoints
    assert (world.home, world.watch_countries) == ("KR", frozenset({"CN"}))
    assert (world.bulk_threshold, world.bulk_window_ms) == (100_000, 3_600_000)
    # Every registry entry gives hosts, filed where the registry places them; the only
    # others are hosts GeoIP alone places.
    filed = {(h, c) for c, by in world.hosts.items() for hosts in by.values() for h in hosts}
    assert set(endpoints.hosts.items()) <= filed
    for suffix, country in endpoints.suffixes:
        assert any(h.endswith(suffix) and c == country for h, c in filed), suffix
    for host, country in filed:
        assert endpoints.country(host) == country or host in GEOIP_ONLY_HOSTS[country]


def test_abroad_it_goes_only_where_disclosed_and_the_registry_places_it(
    runtime: Runtime,
) -> None:
    world = load_world()
    resolver = runtime.resolver()
    via: Counter[str | None] = Counter()
    for line, item in enumerate(generate_items(SimConfig(seed=13, count=8000, start_ms=START)), 1):
        got = decode_line(item.raw, {"file": "sim", "line": line})
        if not isinstance(got, Record) or item.label != "lawful" or got.subject_region != "KR":
            continue
        if not any(c.startswith("user.") for c in got.data_categories or ()):
            continue
        flow = resolver.resolve(got, {"file": "sim", "line": line})
        if flow.dst_country == "KR":
            continue
        declared = {d.country: d for d in world.disclosed[got.platform]}
        assert flow.dst_country in declared, (got.platform, flow.dst_country)
        if got.recipient is not None:
            assert got.recipient == declared[flow.dst_country].recipient
        via[flow.dst_via] += 1
    # Both ways of placing a destination are exercised: GeoIP and the endpoint registry.
    assert via["geoip"] > 500 and via["registry"] > 100, via


# --- against the rule pack -------------------------------------------------------------------


@pytest.mark.parametrize("kind", VIOLATIONS)
def test_each_violation_fires_its_rule_and_nothing_unexpected(runtime: Runtime, kind: str) -> None:
    cfg = SimConfig(seed=31, count=3000, start_ms=START, violation_counts={kind: 3}, **QUIET)
    items = list(generate_items(cfg))
    episodes = {i.episode for i in items if i.label == kind}
    assert len(episodes) == 3
    fired, _ = detect(runtime, items)
    rule = RULE_OF[kind]
    assert fired[rule] > 0
    assert set(fired) <= {rule} | ALSO_FIRES.get(kind, frozenset())
    if kind != "bulk_volume":
        # One matching record per episode: only the episode's offending record matches.
        assert fired[rule] == 3


def test_mixed_run_counts_and_summary(runtime: Runtime) -> None:
    counts = {"consent_withdrawn": 2, "onward_transfer": 2, "bulk_volume": 1}
    cfg = SimConfig(
        seed=41,
        count=8000,
        start_ms=START,
        violation_rates={"no_legal_basis": 2.0},
        violation_counts=counts,
        invalid_rate=5.0,
        duplicate_rate=5.0,
    )
    items = list(generate_items(cfg))
    stats = SimStats()
    for item in items:
        stats.add(item)
    assert stats.total == 8000
    for kind, n in counts.items():
        assert stats.episodes[kind] == n
    assert stats.episodes["no_legal_basis"] > 0
    assert set(stats.episodes) == {*counts, "no_legal_basis"}
    fired, dead = detect(runtime, items)
    assert fired[RULE_OF["no_legal_basis"]] == stats.episodes["no_legal_basis"]
    assert fired[RULE_OF["consent_withdrawn"]] == 2
    assert fired[RULE_OF["onward_transfer"]] == 2
    assert fired[RULE_OF["bulk_volume"]] > 0
    assert sum(dead.values()) == sum(stats.invalid.values()) > 0
    text = stats.render()
    assert "consent_withdrawn 2" in text and f"duplicates {stats.duplicates}" in text


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="unknown violation"):
        list(generate_items(SimConfig(violation_counts={"nope": 1}, count=10)))
    with pytest.raises(ValueError, match="finite count"):
        list(generate_items(SimConfig(violation_counts={"bulk_volume": 1}, count=0)))
    with pytest.raises(ValueError, match="records needed"):
        list(generate_items(SimConfig(violation_counts={"bulk_volume": 5}, count=10)))
    with pytest.raises(ValueError, match="no address networks"):
        list(generate_items(SimConfig(networks={"KR": ["211.234.0.0/16"]}, count=10)))
    with pytest.raises(ValueError, match="no address networks for KR"):
        list(generate_items(SimConfig(networks={"SG": ["8.219.0.0/16"]}, count=10)))
    with pytest.raises(ValueError, match="platforms must be among"):
        list(generate_items(SimConfig(platforms={"aliexpress": 1.0, "nope": 1.0}, count=10)))
    without_cn = {c: n for c, n in BUILTIN_NETWORKS.items() if c != "CN"}
    with pytest.raises(ValueError, match="no watch country"):
        list(generate_items(SimConfig(networks=without_cn, platforms={"temu": 1.0}, count=10)))
    # A world that leaves nothing to break: every disclosed country recognised as adequate,
    # certified for good, disclosed without recipients and for every item.
    world = load_world()
    cert = Certification("C-1", date(2999, 12, 31))
    tame = {
        p: tuple(
            dataclasses.replace(d, recipient=None, items=("user",), certification=cert)
            for d in entries
        )
        for p, entries in world.disclosed.items()
    }
    tame_world = dataclasses.replace(
        world, disclosed=tame, adequacy_recognised=frozenset(world.countries)
    )
    for kind in ("undisclosed_items", "undisclosed_recipient", "adequacy_not_recognised"):
        cfg = SimConfig(world=tame_world, violation_counts={kind: 1}, count=10, **QUIET)
        with pytest.raises(ValueError, match=kind):
            list(generate_items(cfg))
    cfg = SimConfig(world=tame_world, violation_rates={"certification_not_in_force": 1.0}, count=10)
    with pytest.raises(ValueError, match="certification_not_in_force: every disclosed"):
        list(generate_items(cfg))


def test_forever_stream_is_lazy() -> None:
    stream = generate_items(SimConfig(seed=1, count=0, start_ms=START))
    assert len([next(stream) for _ in range(20_000)]) == 20_000


# --- GeoIP pools, sinks and the command ---------------------------------------------------------


def test_pools_from_a_geoip_database_land_where_meant(runtime: Runtime, geo_db: Path) -> None:
    networks = networks_from_geoip(geo_db)
    assert set(networks) == set(BUILTIN_NETWORKS)
    assert "2001:e60::/32" in networks["KR"] and "211.234.0.0/16" in networks["KR"]
    cfg = SimConfig(seed=51, count=4000, start_ms=START, networks=networks, **QUIET)
    items = list(generate_items(cfg))
    assert detect(runtime, items)[0] == Counter()
    # And a database that places the ranges elsewhere gives other addresses.
    moved = {c: ["8.8.8.0/24"] for c in ("KR", "CN", "SG", "US")}
    recs = list(generate(dataclasses.replace(cfg, networks=moved, count=200)))
    assert all(
        ipaddress.ip_address(r["dst_ip"]) in ipaddress.ip_network("8.8.8.0/24")
        or ipaddress.ip_address(r["dst_ip"]).is_private
        for r in recs
        if "dst_ip" in r
    )


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.flushed = self.closed = False

    def send(self, topic: str, value: bytes) -> None:
        self.sent.append((topic, value))

    def flush(self) -> None:
        self.flushed = True

    def close(self) -> None:
        self.closed = True


TOPICS = {"egress": "t.egress", "api_call": "t.api", "consent": "t.consent"}


@pytest.mark.parametrize(("batch", "fmt"), [(1, "array"), (25, "array"), (25, "jsonl")])
def test_kafka_sink_messages_decode_to_the_same_records(batch: int, fmt: str) -> None:
    cfg = SimConfig(seed=61, count=3000, start_ms=START, invalid_rate=30.0, duplicate_rate=10.0)
    items = list(generate_items(cfg))
    producer = FakeProducer()
    sink = KafkaSink(producer, TOPICS, batch=batch, batch_format=fmt)
    for item in items:
        sink.send(item)
    sink.close()
    assert producer.flushed and producer.closed
    if batch > 1:
        assert len(producer.sent) < len(items) / 5
    got_records: Counter[tuple[str, str]] = Counter()
    got_dead: Counter[str] = Counter()
    for offset, (topic, value) in enumerate(producer.sent):
        for got in decode_message(value, {"topic": topic, "partition": 0, "offset": offset}):
            # decode_message yields (record, source) pairs (bare records in older versions).
            out = got[0] if isinstance(got, tuple) else got
            if isinstance(out, DeadLetter):
                got_dead[out.reason] += 1
            else:
                assert topic == TOPICS[out.kind]
                got_records[(out.platform, out.event_id)] += 1
    want_records = Counter(
        (i.record["platform"], i.record["event_id"]) for i in items if i.record is not None
    )
    want_dead = Counter(i.reason for i in items if i.reason is not None)
    assert got_records == want_records
    assert got_dead == want_dead


def test_cli_file_round_trip_through_replay(
    tmp_path: Path, geo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim.jsonl"
    args = ["simulate", "--count", "4000", "--seed", "7"]
    args += ["--start", "2026-10-01T09:00:00+09:00", "--geoip-country", str(geo_db)]
    args += ["--violation-rate", "0", "--violation", "consent_withdrawn=2"]
    args += ["--violation", "stored_in_watch_country=1", "--invalid-rate", "5"]
    assert main([*args, "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    lines = out.read_bytes().splitlines()
    assert len(lines) == 4000
    t0 = parse_ts("2026-10-01T09:00:00+09:00")
    first = next(r for r in map(orjson.loads, lines[:20]) if isinstance(r, dict) and "ts" in r)
    t1 = parse_ts(first["ts"])
    assert t0 is not None and t1 is not None and 0 < t1 - t0 < 60_000
    assert summary.count("\n") == 1 and "violations consent_withdrawn 2" in summary
    # No subject id nor IP address is ever printed.
    assert not re.search(r"u-[0-9a-f]{8}|\d+\.\d+\.\d+\.\d+|[0-9a-f]+::", summary)
    # Same options, same file.
    assert main([*args, "--out", str(tmp_path / "again.jsonl")]) == 0
    assert (tmp_path / "again.jsonl").read_bytes() == out.read_bytes()
    capsys.readouterr()

    alerts, dead = tmp_path / "alerts.jsonl", tmp_path / "dead.jsonl"
    replay = ["replay", str(out), "--geoip-country", str(geo_db)]
    assert main([*replay, "--alerts-out", str(alerts), "--dead-letters-out", str(dead)]) == 0
    rules = Counter(orjson.loads(a)["rule_id"] for a in alerts.read_bytes().splitlines())
    assert set(rules) == {RULE_OF["consent_withdrawn"], RULE_OF["stored_in_watch_country"]}
    n_invalid = sum(
        isinstance(decode_line(line, {"file": "sim", "line": 0}), DeadLetter) for line in lines
    )
    assert len(dead.read_bytes().splitlines()) == n_invalid > 0


def test_cli_rejects_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x.jsonl")
    assert main(["simulate", "--out", out, "--start", "yesterday"]) == 2
    assert main(["simulate", "--out", out, "--violation", "bogus=1"]) == 2
    assert main(["simulate", "--out", out, "--count", "0", "--violation", "bulk_volume=1"]) == 2
    err = capsys.readouterr().err
    assert "--start" in err and "--violation" in err and "finite count" in err


# --- another configuration ----------------------------------------------------------------------


def edited_rules(tmp_path: Path) -> Path:
    """The bundled pack with other platforms, disclosures, registry, watch list and threshold."""
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    (rules / "config" / "disclosures.yaml").write_text(
        textwrap.dedent("""\
            aliexpress:
              - country: CN
                recipient: Alibaba (China) Co., Ltd.
                items: [user.contact, user.name]
              - {country: SG, recipient: Alibaba Singapore, items: [user.contact, user.payment]}
            shein:
              - {country: DE, recipient: Shein Europe GmbH, items: [user.contact, user.name]}
            coupang:
              - {country: JP, items: [user.name, user.payment, user.behavior]}
            temu: []
        """),
        encoding="utf-8",
    )
    endpoints = rules / "config" / "endpoints.yaml"
    text = endpoints.read_text(encoding="utf-8").replace(
        "- suffix: .volces.com\n  country: CN\n", ""
    )
    text += "- suffix: .eu-central-1.amazonaws.com\n  country: DE\n"
    text += "- suffix: .example.jp\n  country: JP\n"
    endpoints.write_text(text, encoding="utf-8")
    for path, old, new in (
        (rules / "pack.yaml", "watch_countries: [CN]", "watch_countries: [CN, RU]"),
        (rules / "detections" / "bulk_volume.yaml", "at_least: 100000", "at_least: 50000"),
    ):
        edited = path.read_text(encoding="utf-8").replace(old, new)
        assert new in edited
        path.write_text(edited, encoding="utf-8")
    return rules


def test_another_configuration_is_followed_by_the_simulator(
    tmp_path: Path,
    geo_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # One environment for both commands, as the demo gives its worker and simulator.
    monkeypatch.setenv("XBORDER_RULES", str(edited_rules(tmp_path)))
    world = load_world()
    assert world.platforms == ("aliexpress", "shein", "coupang")
    hosts = {h for by in world.hosts.values() for names in by.values() for h in names}
    assert "s3.eu-central-1.amazonaws.com" in world.hosts["DE"]["storage"]
    assert "api.example.jp" in world.hosts["JP"]["api"]
    assert not any(h.endswith(".volces.com") for h in hosts)
    assert (world.watch_countries, world.bulk_threshold) == (frozenset({"CN", "RU"}), 50_000)

    def simulate_and_replay(name: str, *options: str) -> tuple[Counter[str], list[dict[str, Any]]]:
        out, alerts = tmp_path / f"{name}.jsonl", tmp_path / f"{name}-alerts.jsonl"
        args = [
            "simulate",
            "--count",
            "6000",
            "--seed",
            "5",
            "--start",
            "2026-10-01T09:00:00+09:00",
        ]
        args += ["--geoip-country", str(geo_db), "--invalid-rate", "0", "--violation-rate", "0"]
        assert main([*args, *options, "--out", str(out)]) == 0
        replay = ["replay", str(out), "--geoip-country", str(geo_db), "--alerts-out", str(alerts)]
        assert main([*replay, "--dead-letters-out", str(tmp_path / f"{name}-dead.jsonl")]) == 0
        capsys.readouterr()
        rules = Counter(orjson.loads(a)["rule_id"] for a in alerts.read_bytes().splitlines())
        return rules, [orjson.loads(line) for line in out.read_bytes().splitlines()]

    fired, records = simulate_and_replay("lawful")
    assert fired == Counter()
    assert {r["platform"] for r in records} == {"aliexpress", "shein", "coupang"}
    assert any(r.get("recipient") == "Shein Europe GmbH" for r in records)
    # Calls to the registry's new DE hosts may leave GeoIP out; they still resolve.
    assert any(".eu-central-1." in r.get("endpoint", "") and "dst_ip" not in r for r in records)

    injected = [arg for kind in VIOLATIONS for arg in ("--violation", f"{kind}=2")]
    fired, _ = simulate_and_replay("violations", *injected)
    assert set(RULE_OF.values()) <= set(fired) <= set(RULE_OF.values()).union(*ALSO_FIRES.values())
