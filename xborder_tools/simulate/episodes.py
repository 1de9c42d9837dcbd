"""Violation episodes: the records of one injected violation, each with its delay from now.

An episode fires its rule once all its records are in; every other record
the simulator makes is lawful.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from xborder_tools.simulate.records import RecordMaker
from xborder_tools.simulate.traffic import ABROAD_OPS, DOMESTIC_OPS, RRN, UNKNOWN_HOSTS, Op, under
from xborder_tools.simulate.world import DISCLOSED, HOME

__all__ = ["EPISODES", "Episode"]

# (delay in ms from the episode's start, record), in send order
Episode = list[tuple[int, dict[str, Any]]]


def no_legal_basis(m: RecordMaker, ms: int) -> Episode:
    rec = m.api_abroad(m.platform(), ms)
    if m.rng.random() < 0.5:
        rec["legal_basis"] = "none"
    else:
        del rec["legal_basis"]
    return [(0, rec)]


def undisclosed_destination(m: RecordMaker, ms: int) -> Episode:
    rng = m.rng
    platform = m.platform()
    # Where each platform's group sits but its policy does not say so.
    wanted = {
        "temu": ("CN", "HK", "JP"),
        "shein": ("CN", "HK", "IE"),
        "aliexpress": ("HK", "RU", "US"),
    }
    country = m.pick(m.countries(wanted[platform]) or m.countries(("CN",)))
    op: Op = m.pick([op for op in ABROAD_OPS if not op.stores])
    cats = m.categories(op, None)
    if rng.random() < 0.5:
        rec = m.api_record(platform, ms, op, country, cats)
        rec["recipient"] = f"affiliate ({country})"
        rec["legal_basis"] = "contract"
    else:
        rec = m.egress_record(platform, ms, op.role, HOME, country, cats)
        rec["subject_region"] = HOME
        rec["bytes"] = rng.randint(2_000, 400_000)
    m.set_records(rec, platform, country, ms, rng.randint(*op.records))
    return [(0, rec)]


def stored_in_watch_country(m: RecordMaker, ms: int) -> Episode:
    # AliExpress is the one platform that disclosed China, so the storage alone is the finding.
    platform = "aliexpress" if "aliexpress" in m.cfg.platforms else m.platform()
    op = next(o for o in ABROAD_OPS if o.name == "s3:PutObject")
    cats = m.categories(op, ("user.contact", "user.name"))
    rec = m.api_record(platform, ms, op, "CN", cats, registry_only=m.rng.random() < 0.5)
    rec["recipient"] = DISCLOSED["aliexpress"][0].recipient
    m.set_records(rec, platform, "CN", ms, m.rng.randint(*op.records))
    rec["dataset_id"] = m.dataset(platform, "orders-archive", ms)
    rec["legal_basis"] = "contract"
    rec["stores"] = True
    return [(0, rec)]


def onward_transfer(m: RecordMaker, ms: int) -> Episode:
    rng = m.rng
    platform = m.platform()
    first = "CN" if platform == "aliexpress" else "SG"
    thirds = {"CN": ("SG", "RU", "VN", "US"), "SG": ("US", "CN", "VN")}[first]
    third = m.pick(m.countries(thirds))
    dataset = f"ds-{platform}-export-{rng.getrandbits(32):08x}"
    cats = ["user.contact.address", "user.name"]
    n = rng.randint(200, 5000)
    # Usually the copy moves on within hours; sometimes the first hop's export
    # arrives late (a batch shipper), so the second hop is seen first.
    reverse = rng.random() < 0.3
    if reverse:
        hop1_ms, hop2_ms = ms - rng.randint(1_000, 20 * 60_000), ms
    else:
        hop1_ms, hop2_ms = ms, ms + rng.randint(60_000, 6 * 3_600_000)
    hop1 = m.egress_record(platform, hop1_ms, "order", HOME, first, cats)
    hop1["subject_region"] = HOME
    hop1["dataset_id"] = dataset
    m.set_records(hop1, platform, first, hop1_ms, n)
    hop1["bytes"] = n * rng.randint(500, 1200)
    hop2 = m.egress_record(platform, hop2_ms, "logistics", first, third, list(cats))
    hop2["subject_region"] = HOME
    hop2["dataset_id"] = dataset
    if rng.random() < 0.5:
        hop2["src_country"] = first
    m.set_records(hop2, platform, third, hop2_ms, n)
    hop2["bytes"] = n * rng.randint(500, 1200)
    if reverse:
        return [(0, hop2), (rng.randint(1_000, 60_000), hop1)]
    return [(0, hop1), (hop2_ms - ms, hop2)]


def consent_withdrawn(m: RecordMaker, ms: int) -> Episode:
    rng = m.rng
    platform = m.platform()
    d = m.disclosure(platform)
    granted = m.granted[platform]
    subject = granted.pop(rng.randrange(len(granted))) if granted else m.new_subject()
    m.withdrawn[platform].add(subject)
    withdraw = m.head("consent", platform, "consent", ms)
    withdraw["subject_id"] = subject
    withdraw["scope"] = "overseas_transfer"
    withdraw["granted"] = False
    withdraw["countries"] = m.pick(([d.country], ["*"]))
    op: Op = m.pick([o for o in ABROAD_OPS if o.subjects and under(o.categories[0], d.items)])
    lag = rng.randint(60_000, 45 * 60_000)
    call = m.api_record(platform, ms + lag, op, d.country, m.categories(op, d.items))
    call["recipient"] = d.recipient
    m.set_records(call, platform, d.country, ms + lag, rng.randint(*op.records))
    call["subject_ids"] = [subject, *m.subjects_granted(platform, rng.randint(0, 3))]
    call["purpose"] = d.purpose
    call["legal_basis"] = "consent"
    return [(0, withdraw), (lag, call)]


def national_id_abroad(m: RecordMaker, ms: int) -> Episode:
    rng = m.rng
    platform = m.platform()
    d = m.disclosure(platform)
    # Customs clearance abroad wants an identifier; the lawful one is the personal
    # customs code, the violation ships the resident registration number instead.
    op = next(o for o in DOMESTIC_OPS if o.name == "customs.clearance.submit")
    cats = [RRN, "user.name", "user.contact.address"]
    if rng.random() < 0.5:
        rec = m.api_record(platform, ms, op, d.country, cats)
        rec["recipient"] = d.recipient
        rec["legal_basis"] = "contract"
    else:
        rec = m.egress_record(platform, ms, op.role, HOME, d.country, cats)
        rec["subject_region"] = HOME
        rec["bytes"] = rng.randint(2_000, 80_000)
    m.set_records(rec, platform, d.country, ms, rng.randint(1, 40))
    return [(0, rec)]


def bulk_volume(m: RecordMaker, ms: int) -> Episode:
    rng = m.rng
    platform = m.platform()
    d = m.disclosure(platform)
    op = next(o for o in ABROAD_OPS if o.name == "orders.export")
    parts = rng.randint(3, 5)
    total = int(m.cfg.bulk_threshold * rng.uniform(1.1, 1.6))
    gaps = [rng.randint(30_000, 8 * 60_000) for _ in range(parts - 1)]
    window = m.cfg.bulk_window_ms
    # All parts inside one tumbling window (the rule's windows align to the epoch).
    begin = ms
    if (begin % window) + sum(gaps) >= window:
        begin = begin - begin % window + window + rng.randint(1_000, 60_000)
    out: Episode = []
    at = begin
    dataset = m.dataset(platform, "orders-bulk", begin)
    for i in range(parts):
        rec = m.api_record(platform, at, op, d.country, m.categories(op, d.items))
        rec["recipient"] = d.recipient
        rec["records"] = total // parts + (total % parts if i == 0 else 0)
        rec["dataset_id"] = dataset
        rec["purpose"] = d.purpose
        rec["legal_basis"] = "contract"
        out.append((at - ms, rec))
        if i < parts - 1:
            at += gaps[i]
    return out


def unresolved_destination(m: RecordMaker, ms: int) -> Episode:
    rng = m.rng
    platform = m.platform()
    op: Op = m.pick([o for o in ABROAD_OPS if not o.stores])
    cats = m.categories(op, None)
    if rng.random() < 0.5:
        rec = m.head("egress", platform, op.role, ms)
        rec["src_ip"] = m.ip(HOME)
        rec["dst_ip"] = m.private_ip()  # a tunnel or proxy: the real exit is hidden
        rec["bytes"] = rng.randint(1_000, 200_000)
        rec["dst_port"] = 443
        rec["protocol"] = "tcp"
        rec["src_country"] = HOME
        rec["subject_region"] = HOME
        rec["data_categories"] = cats
    else:
        rec = m.head("api_call", platform, op.role, ms)
        rec["operation"] = op.name
        rec["endpoint"] = f"https://{m.pick(UNKNOWN_HOSTS)}/v2/{op.name.split('.')[0]}"
        rec["src_country"] = HOME
        rec["method"] = op.method
        rec["status"] = 200
        rec["subject_region"] = HOME
        rec["data_categories"] = cats
        rec["legal_basis"] = "contract"
    rec["records"] = rng.randint(*op.records)
    return [(0, rec)]


EPISODES: Final[Mapping[str, Callable[[RecordMaker, int], Episode]]] = {
    "no_legal_basis": no_legal_basis,
    "undisclosed_destination": undisclosed_destination,
    "stored_in_watch_country": stored_in_watch_country,
    "onward_transfer": onward_transfer,
    "consent_withdrawn": consent_withdrawn,
    "national_id_abroad": national_id_abroad,
    "bulk_volume": bulk_volume,
    "unresolved_destination": unresolved_destination,
}
