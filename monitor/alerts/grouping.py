"""Alert groups: hits of one rule and group key within one grouping window.

Grouping windows are laid out on event time, by default calendar days in the
home region's time zone (`monitor.alerts.windows`): a hit belongs to the
window its event time falls in, whichever hit came first. So the same records in
any order, in replay or in the stream, give the same groups, and `alert_id`,
a hash of the group key and the window's start, is the same too.

The first hit of a window opens its group and is emitted at once; later hits
update the counts and evidence and re-emit the alert under the same
`alert_id`. A hit whose ids were already counted in the group (a duplicate or
redelivered record) changes nothing. A threshold rule's hit carries the
running totals of a key's hot buckets within one grouping window under its
`part` id; the group adds what they grew by, so repeated or stale totals
change nothing either.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, NotRequired, TypedDict

from monitor import bounds
from monitor.alerts.windows import window_end, window_start
from monitor.contract.schemas import Source
from monitor.engine.model import (
    GROUP_FIELDS,
    Evidence,
    Hit,
    RecordRef,
    Rule,
    RulePack,
    Span,
    Totals,
)
from monitor.engine.ruletypes.base import MAX_EVIDENCE
from monitor.engine.ruletypes.threshold import span_order
from monitor.engine.state import SeenStore, Store, scope_of, settle_recent

__all__ = [
    "Alert",
    "AlertContext",
    "AlertEvidence",
    "AlertGroup",
    "AlertGrouper",
    "Groups",
    "alert_id",
    "build_alert",
    "closes_at",
    "group_key",
    "group_start",
    "iso_ms",
]


class AlertGroup(Totals):
    """One alert as the groups table keeps it; `build_alert` makes the alert of it."""

    alert_id: str
    rule: str
    # Start of its grouping window (group_start). Named when the first hit
    # anchored a group; kept, so that groups already in tables still read.
    anchor: int
    revision: int  # 1 when opened, one more at each change
    truncated: NotRequired[bool]
    recent: NotRequired[list[int]]  # ids of its last update (see AlertGrouper._save)
    part_evidence: NotRequired[dict[str, list[Evidence]]]  # each part's latest evidence
    parts: NotRequired[dict[str, list[int]]]  # threshold bucket (`part`) -> PART_FIGURES
    span: NotRequired[Span]  # threshold rules: the heaviest crossing span of its records
    emitted_rev: NotRequired[int]  # the revision last sent (the worker's group agent)
    orgs: NotRequired[list[str]]  # receiving organisations of its records (bounds.MAX_ORGS)


class Groups(TypedDict):
    """The value under a group key: its groups, oldest window first."""

    groups: list[AlertGroup]


class AlertRecordRef(TypedDict):
    event_id: str
    ts: str  # RFC 3339
    source: Source
    via: NotRequired[list[AlertRecordRef]]  # an onward hop's earlier hops, from home on


class AlertEvidence(AlertRecordRef):
    first_hop: NotRequired[AlertRecordRef]


class AlertSpan(TypedDict):
    """A threshold rule's heaviest span of `window` that crossed `at_least`."""

    start: str  # RFC 3339: event time of its first and last record
    end: str
    sum: str  # the field summed (records, bytes)
    total: int
    event_count: int


class Alert(TypedDict):
    """The alert as emitted (detections spec, "Alert fields")."""

    alert_id: str
    rule_id: str
    title: str
    severity: str
    legal_ref: str
    tags: list[str]
    platform: str | None
    src_country: str | None
    dst_country: str | None
    # Who received the data there: the record's recipient, else the ASN
    # organisation of dst_ip; absent when neither is known.
    dst_orgs: NotRequired[list[str]]
    subject_region: str | None
    dataset_id: str | None
    first_seen: str
    last_seen: str
    event_count: int
    bytes: int
    records: int
    data_categories: list[str]
    evidence: list[AlertEvidence]
    revision: int
    truncated: bool
    rules_version: str
    geoip_build: str | None
    emitted_at: str
    span: NotRequired[AlertSpan]  # threshold rules


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def group_key(rule: Rule, hit: Hit) -> str:
    fields = hit["fields"]
    return "|".join([rule.id, *(f"{f}={fields.get(f) or ''}" for f in rule.group_by)])


def alert_id(key: str, start: int) -> str:
    """The group key (which begins with the rule id) and the window's start, nothing else."""
    return hashlib.sha256(f"{key}|{start}".encode()).hexdigest()[:32]


def group_start(rule: Rule, hit: Hit) -> int:
    """Start of the grouping window a hit belongs to: a pure function of its event time.

    A threshold window's totals belong where the threshold window starts.
    """
    at = hit.get("part_start", hit["first_seen"])
    return window_start(at, rule.group_window_ms, rule.group_zone)


@dataclass(frozen=True)
class AlertContext:
    """What every alert states about how it was produced (chain of custody)."""

    rules_version: str
    geoip_build: str | None


def _new_group(rule: Rule, key: str, hit: Hit, start: int) -> AlertGroup:
    fields = hit["fields"].copy()
    for f in GROUP_FIELDS:
        if f not in rule.group_by and f != "subject_region":
            fields[f] = None
    return {
        "alert_id": alert_id(key, start),
        "rule": rule.id,
        "anchor": start,
        "fields": fields,
        "first_seen": hit["first_seen"],
        "last_seen": hit["last_seen"],
        "event_count": 0,
        "bytes": 0,
        "records": 0,
        "categories": [],
        "evidence": [],
        "revision": 0,
    }


# What a group keeps of each window's totals, in this order.
PART_FIGURES: Final[tuple[Literal["event_count", "bytes", "records"], ...]] = (
    "event_count",
    "bytes",
    "records",
)


def closes_at(rule: Rule | None, group: AlertGroup) -> int:
    """Event time after which a group takes no more records (and its seen ids can go).

    A group stays open for late records until a further window has passed
    after its own; a group whose rule left the pack closes with its start.
    """
    start = int(group["anchor"])
    if rule is None:
        return start
    length = rule.group_window_ms
    return window_end(start, length, rule.group_zone) + length


def _at(groups: list[AlertGroup], start: int) -> AlertGroup | None:
    return next((g for g in groups if g["anchor"] == start), None)


def _open(groups: list[AlertGroup], rule: Rule, key: str, hit: Hit, start: int) -> AlertGroup:
    """A new group among the key's groups, kept in window order; the oldest beyond the bound go.

    Groups are emitted as they change, so dropping the oldest loses no
    alert; a late record of a dropped group's window opens its group anew
    (same `alert_id`, counting afresh).
    """
    group = _new_group(rule, key, hit, start)
    groups.append(group)
    groups.sort(key=lambda g: g["anchor"])
    if len(groups) > bounds.MAX_GROUPS_PER_KEY:
        bounds.REACHED["groups"] += 1
        others = [g for g in groups if g is not group]
        for old in others[: len(groups) - bounds.MAX_GROUPS_PER_KEY]:
            groups.remove(old)
    return group


def _merge(group: AlertGroup, hit: Hit) -> None:
    group["event_count"] += hit["event_count"]
    group["bytes"] = bounds.add(group["bytes"], hit["bytes"])
    group["records"] = bounds.add(group["records"], hit["records"])
    if bounds.COUNT_MAX in (group["bytes"], group["records"]):
        group["truncated"] = True
    _widen(group, hit)
    group["revision"] += 1


def _widen(group: AlertGroup, hit: Hit) -> bool:
    """Fold in what the hit knows about its records besides counts; whether anything changed.

    Idempotent (minimum, maximum, union): a window's totals may repeat records
    the group already has.
    """
    before = _widened(group)
    span = hit.get("span")
    if span is not None and ("span" not in group or span_order(span) > span_order(group["span"])):
        group["span"] = span.copy()
    group["first_seen"] = min(group["first_seen"], hit["first_seen"])
    group["last_seen"] = max(group["last_seen"], hit["last_seen"])
    bounds.fold_categories(group, hit)
    if "orgs" in hit:
        bounds.fold_orgs(group, hit["orgs"])
    if hit["evidence"]:
        evidence = {(e["ts"], e["event_id"]): e for e in group["evidence"] + hit["evidence"]}
        group["evidence"] = [evidence[k] for k in sorted(evidence)][:MAX_EVIDENCE]
    return _widened(group) != before


def _widened(
    group: AlertGroup,
) -> tuple[int, int, list[str], list[Evidence], bool, Span | None, list[str] | None]:
    """What `_widen` may change."""
    return (
        group["first_seen"],
        group["last_seen"],
        group["categories"],
        group["evidence"],
        group.get("truncated", False),
        group.get("span"),
        group.get("orgs"),
    )


def build_alert(rule: Rule, group: AlertGroup, ctx: AlertContext, now_ms: int) -> Alert:
    """The alert as emitted: pure, so payloads are tested without a broker."""
    fields = group["fields"]
    alert: Alert = {
        "alert_id": group["alert_id"],
        "rule_id": rule.id,
        "title": rule.title,
        "severity": rule.severity,
        "legal_ref": rule.legal_ref,
        "tags": list(rule.tags),
        "platform": fields.get("platform"),
        "src_country": fields.get("src_country"),
        "dst_country": fields.get("dst_country"),
        "subject_region": fields.get("subject_region"),
        "dataset_id": fields.get("dataset_id"),
        "first_seen": iso_ms(group["first_seen"]),
        "last_seen": iso_ms(group["last_seen"]),
        "event_count": group["event_count"],
        "bytes": group["bytes"],
        "records": group["records"],
        "data_categories": list(group["categories"]),
        "evidence": [_alert_evidence(e) for e in group["evidence"]],
        "revision": group["revision"],
        # A bound of monitor.bounds was reached: counts saturated or labels cut.
        "truncated": bool(group.get("truncated", False)),
        "rules_version": ctx.rules_version,
        "geoip_build": ctx.geoip_build,
        "emitted_at": iso_ms(now_ms),
    }
    if "orgs" in group:
        alert["dst_orgs"] = list(group["orgs"])
    if "span" in group:
        span = group["span"]
        alert["span"] = {
            "start": iso_ms(span["start"]),
            "end": iso_ms(span["end"]),
            "sum": span["sum"],
            "total": span["total"],
            "event_count": span["event_count"],
        }
    return alert


def _alert_evidence(e: Evidence) -> AlertEvidence:
    out: AlertEvidence = {"event_id": e["event_id"], "ts": iso_ms(e["ts"]), "source": e["source"]}
    if "first_hop" in e:
        hop = e["first_hop"]
        out["first_hop"] = _alert_ref(hop)
        if "via" in hop:
            # An onward chain: the hops before the one that took the data here.
            out["first_hop"]["via"] = [_alert_ref(v) for v in hop["via"]]
    return out


def _alert_ref(ref: RecordRef) -> AlertRecordRef:
    return {"event_id": ref["event_id"], "ts": iso_ms(ref["ts"]), "source": ref["source"]}


class AlertGrouper:
    """Folds hits into alert groups kept in a Store keyed by group key."""

    def __init__(self, pack: RulePack, store: Store[Groups], seen: SeenStore) -> None:
        self.pack = pack
        self.store = store
        self.seen = seen

    def add(self, hit: Hit, rule: Rule | None = None) -> tuple[Rule, AlertGroup] | None:
        """Fold one hit in; the changed group to emit, or None when nothing changed.

        `rule`: the hit's rule as the caller's pack has it (the worker's pack
        is replaced by reloads; this grouper's stays the one it was built with).
        """
        rule = rule or self.pack.by_id[hit["rule"]]
        key = group_key(rule, hit)
        value = self.store.get(key) or {"groups": []}
        groups = value["groups"]
        start = group_start(rule, hit)
        part = hit.get("part")
        if part is not None:
            return self._add_part(rule, key, value, str(part), hit, start)
        target = _at(groups, start)
        if target is not None:
            # A record belongs to one window, so only its group can have counted it.
            recent = target.get("recent", ())
            known = self.seen.members(scope_of(key, start))
            if any(i in recent or i in known for i in hit["ids"]):
                return None
        else:
            target = _open(groups, rule, key, hit, start)
        _merge(target, hit)
        self._save(rule, key, value, target, hit["ids"])
        return rule, target

    def _save(
        self, rule: Rule, key: str, value: Groups, target: AlertGroup, ids: list[int]
    ) -> None:
        """Write the group value, then the seen entries of the ids it just counted.

        Crash safety: the group (naming those ids in `recent`) is written before
        the seen entries, in the same changelog partition, so after a crash
        either both, or the group with `recent`, or neither is there: a
        redelivered hit is never counted twice nor lost. The ids `recent` named
        before get their seen entries first, should a crash have lost them.
        """
        scope = scope_of(key, target["anchor"])
        expires = closes_at(rule, target)
        settle_recent(self.seen, scope, target.get("recent", ()), expires)
        target["recent"] = list(ids)
        self.store[key] = value
        self.seen.add_many(scope, ids, expires)

    def _add_part(
        self, rule: Rule, key: str, value: Groups, part: str, hit: Hit, start: int
    ) -> tuple[Rule, AlertGroup] | None:
        """A window's running totals: the group adds what they grew by since it last saw them.

        A window's records only ever join it, so totals with no more records
        than the group has are a repeat or come from a window still being
        rebuilt after a crash; they change no count. The totals live in the
        group itself, so one write keeps them and the counts consistent.
        """
        groups = value["groups"]
        target = _at(groups, start)
        before = target.get("parts", {}).get(part) if target is not None else None
        before = before or [0] * len(PART_FIGURES)
        if target is not None and hit["event_count"] <= before[0]:
            # Stale totals (a repeat, or state being rebuilt after a crash):
            # their span or labels may be news, their evidence is not the
            # part's latest (see below).
            if not _widen(target, {**hit, "evidence": []}):
                return None
            target["revision"] += 1
        else:
            target = target or _open(groups, rule, key, hit, start)
            totals = [hit[f] for f in PART_FIGURES]
            count, size, records = (now - then for now, then in zip(totals, before, strict=True))
            # A part's evidence is its own latest (a threshold rule's earliest
            # record per hot bucket: an earlier one replaces it), so the
            # group's is the earliest of its parts' latest, not of all ever sent.
            evidence = target.setdefault("part_evidence", {})
            evidence[part] = hit["evidence"]
            merged = [e for entries in evidence.values() for e in entries]
            target["evidence"] = []
            _merge(
                target,
                {
                    **hit,
                    "event_count": count,
                    "bytes": size,
                    "records": records,
                    "evidence": merged,
                },
            )
            target.setdefault("parts", {})[part] = totals
        self._save(rule, key, value, target, [])
        return rule, target
