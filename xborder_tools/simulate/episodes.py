"""Violation episodes: the records of one injected violation, each with its delay from now.

An episode fires its rule once all its records are in; every other record
the simulator makes is lawful.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from monitor.config.disclosures import Disclosure
from xborder_tools.simulate.records import RecordMaker, put
from xborder_tools.simulate.traffic import (
    ABROAD_OPS,
    DOMESTIC_OPS,
    ONWARD_THIRDS,
    OUTSIDE_CATEGORIES,
    RRN,
    UNDISCLOSED_RECIPIENTS,
    UNDISCLOSED_STORIES,
    UNKNOWN_HOSTS,
    Op,
    under,
)

__all__ = ["EPISODES", "Episode", "unavailable", "watch_countries"]

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

    def undisclosed(countries: Iterable[str]) -> list[str]:
        return [c for c in countries if c != m.home and not m.world.discloses(platform, c)]

    story = undisclosed(m.countries(UNDISCLOSED_STORIES.get(platform, ())))
    country = m.pick(story or undisclosed(m.pools))
    op: Op = m.pick([op for op in ABROAD_OPS if not op.stores])
    cats = m.categories(op, None)
    if rng.random() < 0.5:
        rec = m.api_record(platform, ms, op, country, cats)
        rec["recipient"] = f"affiliate ({country})"
        rec["legal_basis"] = "contract"
    else:
        rec = m.egress_record(platform, ms, op.role, m.home, country, cats)
        rec["subject_region"] = m.home
        rec["bytes"] = rng.randint(2_000, 400_000)
    m.set_records(rec, platform, country, ms, rng.randint(*op.records))
    return [(0, rec)]


def stored_in_watch_country(m: RecordMaker, ms: int) -> Episode:
    # Preferably by a platform that disclosed the watch country, so that the storage
    # alone is the finding (AliExpress and China); otherwise the destination is
    # undisclosed as well.
    watch = watch_countries(m)
    found = next(((p, d) for p in m.platforms for d in m.disclosed[p] if d.country in watch), None)
    if found is not None:
        platform, disclosed = found
        country, recipient = disclosed.country, disclosed.recipient
    else:
        platform = m.platform()
        country = m.pick(watch)
        recipient = f"affiliate ({country})"
    op = next(o for o in ABROAD_OPS if o.name == "s3:PutObject")
    cats = m.categories(op, ("user.contact", "user.name"))
    rec = m.api_record(platform, ms, op, country, cats, registry_only=m.rng.random() < 0.5)
    put(rec, "recipient", recipient)
    m.set_records(rec, platform, country, ms, m.rng.randint(*op.records))
    rec["dataset_id"] = m.dataset(platform, "orders-archive", ms)
    rec["legal_basis"] = "contract"
    rec["stores"] = True
    return [(0, rec)]


def onward_transfer(m: RecordMaker, ms: int) -> Episode:
    rng = m.rng
    platform = m.platform()
    # The recipient of the platform's first disclosure passes the data on.
    first = m.disclosed[platform][0].country

    def elsewhere(countries: Iterable[str]) -> list[str]:
        return [c for c in countries if c not in (m.home, first)]

    third = m.pick(elsewhere(m.countries(ONWARD_THIRDS.get(first, ()))) or elsewhere(m.pools))
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
    hop1 = m.egress_record(platform, hop1_ms, "order", m.home, first, cats)
    hop1["subject_region"] = m.home
    hop1["dataset_id"] = dataset
    m.set_records(hop1, platform, first, hop1_ms, n)
    hop1["bytes"] = n * rng.randint(500, 1200)
    hop2 = m.egress_record(platform, hop2_ms, "logistics", first, third, list(cats))
    hop2["subject_region"] = m.home
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
    ops = m.lawful_ops(d)
    op: Op = m.pick([o for o in ops if o.subjects] or ops)
    lag = rng.randint(60_000, 45 * 60_000)
    call = m.api_record(platform, ms + lag, op, d.country, m.categories(op, d.items))
    put(call, "recipient", d.recipient)
    m.set_records(call, platform, d.country, ms + lag, rng.randint(*op.records))
    call["subject_ids"] = [subject, *m.subjects_granted(platform, rng.randint(0, 3))]
    put(call, "purpose", d.purpose)
    call["legal_basis"] = "consent"
    return [(0, withdraw), (lag, call)]


def national_id_abroad(m: RecordMaker, ms: int) -> Episode:
    platform = m.platform()
    d = m.disclosure(platform)
    # Customs clearance abroad wants an identifier; the lawful one is the personal
    # customs code, the violation ships the resident registration number instead.
    op = next(o for o in DOMESTIC_OPS if o.name == "customs.clearance.submit")
    cats = [RRN, "user.name", "user.contact.address"]
    return [(0, _call_or_flow(m, platform, d, ms, op, cats, 80_000, 40))]


def _call_or_flow(
    m: RecordMaker,
    platform: str,
    d: Disclosure,
    ms: int,
    op: Op,
    cats: list[str],
    most_bytes: int,
    most_records: int,
) -> dict[str, Any]:
    """Half the time a call to `d`'s recipient on a contract, else an egress flow there."""
    rng = m.rng
    if rng.random() < 0.5:
        rec = m.api_record(platform, ms, op, d.country, cats)
        put(rec, "recipient", d.recipient)
        rec["legal_basis"] = "contract"
    else:
        rec = m.egress_record(platform, ms, op.role, m.home, d.country, cats)
        rec["subject_region"] = m.home
        rec["bytes"] = rng.randint(2_000, most_bytes)
    m.set_records(rec, platform, d.country, ms, rng.randint(1, most_records))
    return rec


def bulk_volume(m: RecordMaker, ms: int) -> Episode:
    rng = m.rng
    platform = m.platform()
    d = m.disclosure(platform)
    ops = m.lawful_ops(d)
    op = next((o for o in ops if o.name == "orders.export"), ops[0])
    parts = rng.randint(3, 5)
    total = int(m.bulk_threshold * rng.uniform(1.1, 1.6))
    gaps = [rng.randint(30_000, 8 * 60_000) for _ in range(parts - 1)]
    window = m.bulk_window_ms
    # All parts inside one tumbling window (the rule's windows align to the epoch).
    begin = ms
    if (begin % window) + sum(gaps) >= window:
        begin = begin - begin % window + window + rng.randint(1_000, 60_000)
    out: Episode = []
    at = begin
    dataset = m.dataset(platform, "orders-bulk", begin)
    for i in range(parts):
        rec = m.api_record(platform, at, op, d.country, m.categories(op, d.items))
        put(rec, "recipient", d.recipient)
        rec["records"] = total // parts + (total % parts if i == 0 else 0)
        rec["dataset_id"] = dataset
        put(rec, "purpose", d.purpose)
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
        rec["src_ip"] = m.ip(m.home)
        rec["dst_ip"] = m.private_ip()  # a tunnel or proxy: the real exit is hidden
        rec["bytes"] = rng.randint(1_000, 200_000)
        rec["dst_port"] = 443
        rec["protocol"] = "tcp"
        rec["src_country"] = m.home
        rec["subject_region"] = m.home
        rec["data_categories"] = cats
    else:
        rec = m.head("api_call", platform, op.role, ms)
        rec["operation"] = op.name
        rec["endpoint"] = f"https://{m.pick(UNKNOWN_HOSTS)}/v2/{op.name.split('.')[0]}"
        rec["src_country"] = m.home
        rec["method"] = op.method
        rec["status"] = 200
        rec["subject_region"] = m.home
        rec["data_categories"] = cats
        rec["legal_basis"] = "contract"
    rec["records"] = rng.randint(*op.records)
    return [(0, rec)]


# --- the disclosure and legal-basis checks --------------------------------------------------
# Each sends personal data of the home region to a country its platform disclosed, with the
# disclosed recipient and items (but the one thing the episode breaks), on a basis that holds
# (but the one the episode claims), never stored: only the episode's own rule fires.


def _entries(m: RecordMaker, platform: str, country: str) -> list[Disclosure]:
    return [d for d in m.world.disclosed[platform] if d.country == country]


def _items_candidates(m: RecordMaker) -> list[tuple[str, Disclosure, list[str]]]:
    """(platform, disclosure, user categories not disclosed for its country), where checked."""
    out = []
    for p in m.platforms:
        for d in m.disclosed[p]:
            entries = _entries(m, p, d.country)
            if any(not e.items for e in entries):
                continue  # a country disclosed without items is not checked
            items = [i for e in entries for i in e.items]
            beyond = [c for c in OUTSIDE_CATEGORIES if not under(c, items)]
            if beyond:
                out.append((p, d, beyond))
    return out


def _recipient_candidates(m: RecordMaker) -> list[tuple[str, Disclosure, list[str]]]:
    """(platform, disclosure, recipients not disclosed for its country), where checked."""
    out = []
    for p in m.platforms:
        for d in m.disclosed[p]:
            entries = _entries(m, p, d.country)
            if any(e.recipient is None for e in entries):
                continue  # a country disclosed without a recipient is not checked
            named = {" ".join((e.recipient or "").split()).casefold() for e in entries}
            others = [r for r in UNDISCLOSED_RECIPIENTS if r.casefold() not in named]
            if others:
                out.append((p, d, others))
    return out


def _adequacy_candidates(m: RecordMaker) -> list[tuple[str, Disclosure]]:
    recognised = m.world.adequacy_recognised
    return [(p, d) for p in m.platforms for d in m.disclosed[p] if d.country not in recognised]


def _uncertified_candidates(m: RecordMaker, ms: int) -> list[tuple[str, Disclosure]]:
    """Disclosures of a country no certification of the platform covers at `ms`."""

    def in_force(p: str, country: str) -> bool:
        return any(
            e.certification is not None and ms < e.certification.ends_ms
            for e in _entries(m, p, country)
        )

    return [(p, d) for p in m.platforms for d in m.disclosed[p] if not in_force(p, d.country)]


def _disclosed_call(
    m: RecordMaker, platform: str, d: Disclosure, ms: int, basis: str
) -> dict[str, Any]:
    """A lawful call to `d` in every respect but `basis`."""
    ops = m.lawful_ops(d)
    op: Op = m.pick(ops)
    rec = m.api_record(platform, ms, op, d.country, m.categories(op, d.items))
    put(rec, "recipient", d.recipient)
    m.set_records(rec, platform, d.country, ms, m.rng.randint(*op.records))
    if op.subjects:
        rec["subject_ids"] = [m.new_subject() for _ in range(m.rng.randint(1, 2))]
    if op.dataset is not None:
        rec["dataset_id"] = m.dataset(platform, op.dataset, ms)
    put(rec, "purpose", d.purpose)
    rec["legal_basis"] = basis
    return rec


def undisclosed_items(m: RecordMaker, ms: int) -> Episode:
    platform, d, beyond = m.pick(_items_candidates(m))
    # The disclosed items a lawful call carries, and one category beyond them.
    op: Op = m.pick(m.lawful_ops(d))
    cats = [*m.categories(op, d.items), m.pick(beyond)]
    return [(0, _call_or_flow(m, platform, d, ms, op, cats, 200_000, 60))]


def adequacy_not_recognised(m: RecordMaker, ms: int) -> Episode:
    platform, d = m.pick(_adequacy_candidates(m))
    return [(0, _disclosed_call(m, platform, d, ms, "adequacy"))]


def undisclosed_recipient(m: RecordMaker, ms: int) -> Episode:
    platform, d, others = m.pick(_recipient_candidates(m))
    rec = _disclosed_call(m, platform, d, ms, "contract")
    rec["recipient"] = m.pick(others)
    return [(0, rec)]


def certification_not_in_force(m: RecordMaker, ms: int) -> Episode:
    platform, d = m.pick(_uncertified_candidates(m, ms))
    return [(0, _disclosed_call(m, platform, d, ms, "certification"))]


def unavailable(m: RecordMaker, kinds: Iterable[str], start_ms: int) -> dict[str, str]:
    """The kinds the configuration leaves nothing to inject with, and why."""
    why: dict[str, str] = {}
    if "stored_in_watch_country" in kinds and not watch_countries(m):
        why["stored_in_watch_country"] = "no watch country of the rule pack has address networks"
    if "undisclosed_items" in kinds and not _items_candidates(m):
        why["undisclosed_items"] = "every destination is disclosed for all items, or for none"
    if "undisclosed_recipient" in kinds and not _recipient_candidates(m):
        why["undisclosed_recipient"] = "no destination is disclosed with its recipient"
    if "adequacy_not_recognised" in kinds and not _adequacy_candidates(m):
        why["adequacy_not_recognised"] = "every disclosed country is recognised as adequate"
    if "certification_not_in_force" in kinds and not _uncertified_candidates(m, start_ms):
        why["certification_not_in_force"] = "every disclosed country has a certification in force"
    return why


def watch_countries(m: RecordMaker) -> list[str]:
    """The pack's watch countries that have addresses, to store personal data in."""
    return [c for c in sorted(m.world.watch_countries) if c in m.pools]


EPISODES: Final[Mapping[str, Callable[[RecordMaker, int], Episode]]] = {
    "no_legal_basis": no_legal_basis,
    "undisclosed_destination": undisclosed_destination,
    "stored_in_watch_country": stored_in_watch_country,
    "onward_transfer": onward_transfer,
    "consent_withdrawn": consent_withdrawn,
    "national_id_abroad": national_id_abroad,
    "bulk_volume": bulk_volume,
    "unresolved_destination": unresolved_destination,
    "undisclosed_items": undisclosed_items,
    "adequacy_not_recognised": adequacy_not_recognised,
    "undisclosed_recipient": undisclosed_recipient,
    "certification_not_in_force": certification_not_in_force,
}
