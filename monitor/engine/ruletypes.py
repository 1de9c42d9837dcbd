"""Stateful rule types: threshold windows, onward transfers, consent state.

Each type splits its work in two pure steps so both drivers share it:
`route(flow, matched)` names the state keys a record touches and the item to
apply there; `apply(store, key, item)` updates the state under one key and
returns hits. `replay` calls `apply` at once on a dict; the worker sends the
item through a topic keyed by the state key to the agent that owns the table
partition, which calls the same `apply`.

Time is event time throughout. State carries its own timestamps and is pruned
as it is touched and by `expire` (state older than the rule's horizon).
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Mapping
from operator import attrgetter
from typing import Any, ClassVar

from monitor import bounds
from monitor.contract.schemas import Record, Source
from monitor.engine.conditions import Predicate
from monitor.engine.model import Hit
from monitor.engine.state import SeenStore, Store, event_hash, scope_of, subject_hash
from monitor.geo.resolve import Flow

__all__ = [
    "REGISTRY",
    "ConsentRule",
    "OnwardRule",
    "RuleType",
    "ThresholdRule",
    "WindowBatch",
    "earliest",
    "settle_recent",
    "single_hit",
    "window_hit",
]

MAX_EVIDENCE = 20


def evidence_of(
    state: Mapping[str, Any], first_hop: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "event_id": state["event_id"],
        "ts": state["ts"],
        "source": state["source"],
    }
    if first_hop is not None:
        entry["first_hop"] = dict(first_hop)
    return entry


def single_hit(
    rule_id: str, state: Mapping[str, Any], first_hop: Mapping[str, Any] | None = None
) -> Hit:
    """A hit for one matching record (`state` is `Flow.to_state()`)."""
    return {
        "rule": rule_id,
        "fields": {
            "platform": state["platform"],
            "src_country": state["src_country"],
            "dst_country": state["dst_country"],
            "subject_region": state["subject_region"],
            "dataset_id": state["dataset_id"],
        },
        "ids": [event_hash(state["platform"], state["event_id"])],
        "first_seen": state["ts"],
        "last_seen": state["ts"],
        "event_count": 1,
        "bytes": state["bytes"],
        "records": state["records"],
        "categories": sorted(state["data_categories"]),
        "evidence": [evidence_of(state, first_hop)],
        "truncated": state.get("truncated", False),
    }


def window_hit(
    rule_id: str, window_id: int, agg: Mapping[str, Any], evidence: list[dict[str, Any]]
) -> Hit:
    """A hit standing for every record of a threshold window so far.

    It carries the window's running totals, not an increment: the alert group
    keeps the latest totals per window (`part`) and adds only the difference.
    So a window rebuilt after a crash, whose records come back in another
    order and cross the threshold at another record, neither counts a record
    twice nor drops one (records are deduplicated by the window, once).
    `evidence` is what the group may not have yet: all of the window's when it
    crosses, then the new record's own entry when it is among the earliest.
    """
    return {
        "rule": rule_id,
        "fields": dict(agg["fields"]),
        "ids": [],
        "part": window_id,
        "first_seen": agg["first_seen"],
        "last_seen": agg["last_seen"],
        "event_count": agg["event_count"],
        "bytes": agg["bytes"],
        "records": agg["records"],
        "categories": list(agg["categories"]),
        "evidence": evidence,
        "truncated": agg.get("truncated", False),
    }


def settle_recent(seen: SeenStore, scope: str, recent: Iterable[int], expires: int) -> None:
    """Give the ids a state value names as `recent` their seen entries, before it forgets them.

    After a crash the state can come back without the seen entries of its last
    update (they are written after it); `recent` covers them only until the
    state's next update replaces it. A duplicate of such a record arriving
    later (another copy of it, re-sent by a restarted upstream agent) would
    then be counted again.
    """
    known = seen.members(scope)
    missing = [i for i in recent if i not in known]
    if missing:
        seen.add_many(scope, missing, expires)


class RuleType:
    """Base of the stateful rule types; `name` is the `type:` of a rule in YAML."""

    name: ClassVar[str]
    # Parameters the type reads from the rule's `params`, with their kinds.
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, rule_id: str, params: Mapping[str, Any], home_region: str) -> None:
        self.rule_id = rule_id
        self.params = params
        self.home = home_region

    # The same test as an expression over the record `r`, for generated matchers.
    concerns_src: ClassVar[str | None] = None

    def concerns(self, record: Record) -> bool:
        """Whether the record can touch this rule's state at all (cheap, checked first)."""
        return True

    def route(self, flow: Flow, matched: bool) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def apply(self, store: Store, seen: SeenStore, key: str, item: Mapping[str, Any]) -> list[Hit]:
        raise NotImplementedError

    def apply_many(
        self, store: Store, seen: SeenStore, key: str, items: Iterable[Mapping[str, Any]]
    ) -> list[Hit]:
        """Several items of one key, in order: as `apply` on each, but may read and write once."""
        hits: list[Hit] = []
        for item in items:
            hits.extend(self.apply(store, seen, key, item))
        return hits

    def horizon_ms(self) -> int:
        """How long state stays useful after the newest event time seen."""
        raise NotImplementedError

    def expire(self, value: Any, watermark: int) -> Any:
        """The value pruned of what is older than the horizon; None when nothing is left."""
        raise NotImplementedError

    def closed_scopes(self, key: str, value: Any, watermark: int) -> list[str]:
        """Scopes of the seen-store that `expire` makes useless."""
        return []


class ThresholdRule(RuleType):
    """Sum a field per key over tumbling event-time windows; hit once the sum reaches a threshold.

    Records reach a window a batch at a time: `accumulate` folds a batch's
    matching records into one item per (key, window), carrying each record's
    id and figures, so the window is updated once per batch. Once a window
    has crossed, every update sends a hit with the window's totals.
    """

    name = "threshold"
    required = ("sum", "at_least", "window", "per")

    def __init__(self, rule_id: str, params: Mapping[str, Any], home_region: str) -> None:
        super().__init__(rule_id, params, home_region)
        self.field: str = params["sum"]
        self.threshold: int = params["at_least"]
        self.window: int = params["window"]
        self.per: tuple[str, ...] = tuple(params["per"])
        self.lateness: int = params.get("allowed_lateness", self.window)
        # The per-values of a flow in one C call (a tuple, or the value when one).
        self._per_values = attrgetter(
            *(f if f in ("src_country", "dst_country") else f"record.{f}" for f in self.per)
        )

    def route(self, flow: Flow, matched: bool) -> list[tuple[str, dict[str, Any]]]:
        """One record alone: its batch of one."""
        if not matched:
            return []
        batch: dict[tuple[Any, int], WindowBatch] = {}
        self.accumulate(batch, flow)
        return self.drain(batch)

    def accumulate(self, batch: dict[tuple[Any, int], WindowBatch], flow: Flow) -> None:
        """Fold one matching record into the batch's item for its (key, window)."""
        r = flow.record
        ts = r.ts
        start = ts - ts % self.window
        at = (self._per_values(flow), start)
        acc = batch.get(at)
        if acc is None:
            acc = batch[at] = WindowBatch(self._fields(flow), ts)
        acc.add(r, flow.source)

    def drain(self, batch: dict[tuple[Any, int], WindowBatch]) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for (values, start), acc in batch.items():
            parts = values if len(self.per) > 1 else (values,)
            key = "|".join([self.rule_id, *(str(v) for v in parts)])
            out.extend((key, item) for item in acc.items(start))
        batch.clear()
        return out

    def _fields(self, flow: Flow) -> dict[str, Any]:
        r = flow.record
        fields: dict[str, Any] = {
            "src_country": None,
            "dataset_id": None,
            "platform": r.platform,
            "dst_country": flow.dst_country,
            "subject_region": r.subject_region,
        }
        fields |= {f: _flow_value(flow, f) for f in self.per}
        return fields

    def horizon_ms(self) -> int:
        return self.window + self.lateness

    def apply(self, store: Store, seen: SeenStore, key: str, item: Mapping[str, Any]) -> list[Hit]:
        start: int = item["window"]
        value = store.get(key) or {"windows": {}}
        windows: dict[str, Any] = value["windows"]
        w = windows.get(str(start))
        if w is None:
            w = windows[str(start)] = {"fired": False, "agg": _empty_agg(item)}
            if len(windows) > bounds.MAX_WINDOWS_PER_KEY:
                # Records spread far apart in time (the sweep has not yet
                # dropped the old windows): the oldest go, this one stays.
                bounds.REACHED["windows"] += 1
                others = sorted(int(s) for s in windows if s != str(start))
                for old in others[: len(windows) - bounds.MAX_WINDOWS_PER_KEY]:
                    del windows[str(old)]
        scope = scope_of(key, start)
        agg = w["agg"]
        recent = w.get("recent", ())
        known = seen.members(scope)
        new = [(h, n, r) for h, n, r in item["ids"] if h not in recent and h not in known]
        window_id = event_hash(key, f"window:{start}")
        if not new:
            # Redelivered records. Should the window's hit have been lost
            # while the window was saved, a fired window sends it again (the
            # alert group ignores totals it already has).
            return [window_hit(self.rule_id, window_id, agg, agg["evidence"])] if w["fired"] else []
        agg["event_count"] += len(new)
        agg["bytes"] = bounds.add(agg["bytes"], sum(n for _, n, _ in new))
        agg["records"] = bounds.add(agg["records"], sum(r for _, _, r in new))
        if bounds.COUNT_MAX in (agg["bytes"], agg["records"]):
            agg["truncated"] = True
        # Repeated records may ride along below: min, max and unions are idempotent.
        agg["first_seen"] = min(agg["first_seen"], item["first_seen"])
        agg["last_seen"] = max(agg["last_seen"], item["last_seen"])
        bounds.fold_categories(agg, item)
        agg["evidence"] = earliest(agg["evidence"] + item["evidence"])
        w["fired"] = w["fired"] or agg[self.field] >= self.threshold
        # The window (naming these records in `recent`) is written before their
        # seen-ids: see AlertGrouper.add for why the order matters.
        expires = start + self.horizon_ms()
        settle_recent(seen, scope, recent, expires)
        w["recent"] = [h for h, _, _ in new]
        store[key] = value
        seen.add_many(scope, w["recent"], expires)
        return [window_hit(self.rule_id, window_id, agg, agg["evidence"])] if w["fired"] else []

    def expire(self, value: Any, watermark: int) -> Any:
        keep = {s: w for s, w in value["windows"].items() if int(s) + self.horizon_ms() > watermark}
        return {"windows": keep} if keep else None

    def closed_scopes(self, key: str, value: Any, watermark: int) -> list[str]:
        return [
            scope_of(key, s) for s in value["windows"] if int(s) + self.horizon_ms() <= watermark
        ]


def _flow_value(flow: Flow, name: str) -> Any:
    """A field of a record placed on the map, as state keeps it (counts absent as 0)."""
    if name in ("src_country", "dst_country"):
        return getattr(flow, name)
    value = getattr(flow.record, name)
    if name in ("bytes", "records"):
        return value or 0
    return value


def _empty_agg(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "fields": dict(item["fields"]),
        "first_seen": item["first_seen"],
        "last_seen": item["last_seen"],
        "event_count": 0,
        "bytes": 0,
        "records": 0,
        "categories": [],
        "evidence": [],
    }


def earliest(evidence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The MAX_EVIDENCE earliest entries, one per record, by (event time, event id)."""
    unique = {(e["ts"], e["event_id"]): e for e in evidence}
    return [unique[k] for k in sorted(unique)[:MAX_EVIDENCE]]


class WindowBatch:
    """One threshold window's records within a batch: ids and figures, earliest evidence."""

    __slots__ = ("categories", "fields", "first", "ids", "last", "sample")

    def __init__(self, fields: dict[str, Any], ts: int) -> None:
        self.fields = fields
        self.ids: dict[int, tuple[int, int]] = {}
        self.first = ts
        self.last = ts
        self.categories: set[str] = set()
        self.sample: list[tuple[int, str, Source]] = []

    def add(self, r: Record, source: Source) -> None:
        ts = r.ts
        self.ids[event_hash(r.platform, r.event_id)] = (r.bytes or 0, r.records or 0)
        if ts < self.first:
            self.first = ts
        elif ts > self.last:
            self.last = ts
        self.categories.update(r.data_categories)
        sample = self.sample
        # Kept bounded: only entries that can still be among the earliest.
        if len(sample) < MAX_EVIDENCE or (ts, r.event_id) < sample[-1][:2]:
            insort(sample, (ts, r.event_id, source), key=_sample_key)
            del sample[MAX_EVIDENCE:]

    # Ids per item: an item travels in one Kafka message (1 MB by default)
    # and its ids become one seen segment; 5,000 ids are about 200 KB.
    MAX_IDS = 5_000

    def items(self, start: int) -> list[dict[str, Any]]:
        """The window's items for this batch: one, or one per MAX_IDS ids.

        Later items carry no categories or evidence (the first has them; both
        merge idempotently) and the batch's first and last event time.
        """
        ids = [[h, n, r] for h, (n, r) in self.ids.items()]
        labels, cut = bounds.categories(self.categories)
        out = []
        for i in range(0, len(ids), self.MAX_IDS):
            out.append(
                {
                    "window": start,
                    "fields": self.fields,
                    "ids": ids[i : i + self.MAX_IDS],
                    "first_seen": self.first,
                    "last_seen": self.last,
                    "categories": sorted(labels) if i == 0 else [],
                    "truncated": cut,
                    "evidence": [
                        {"event_id": e, "ts": ts, "source": src} for ts, e, src in self.sample
                    ]
                    if i == 0
                    else [],
                }
            )
        return out


def _sample_key(entry: tuple[int, str, Source]) -> tuple[int, str]:
    return entry[0], entry[1]


def _consent_order(consent: Mapping[str, Any]) -> tuple[int, str]:
    return consent["ts"], consent["event_id"]


def _keep_newest_hops(first: dict[str, list[dict[str, Any]]], limit: int) -> None:
    """First hops of every country (each list sorted by time) cut to the newest `limit`."""
    total = sum(map(len, first.values()))
    if total <= limit:
        return
    bounds.REACHED["hops"] += 1
    every = sorted((h["ts"], h["event_id"], c) for c, hops in first.items() for h in hops)
    for _, event_id, country in every[: total - limit]:
        first[country] = [h for h in first[country] if h["event_id"] != event_id]
        if not first[country]:
            del first[country]


def _call_order(call: Mapping[str, Any]) -> tuple[int, str]:
    return call["flow"]["ts"], call["flow"]["event_id"]


def _hop_time(hop: Mapping[str, Any]) -> int:
    return int(hop["ts"])


class OnwardRule(RuleType):
    """A dataset that went home -> S, then S -> a third country, within a window.

    State per (platform, dataset): first hops by country S, and second hops
    still waiting for their first hop (so arrival order does not matter: event
    time decides).
    """

    name = "onward"
    required = ("window",)
    MAX_PER_COUNTRY = 64
    MAX_PENDING = bounds.MAX_PENDING_HOPS

    def __init__(
        self,
        rule_id: str,
        params: Mapping[str, Any],
        home_region: str,
        first_hop: Predicate,
    ) -> None:
        super().__init__(rule_id, params, home_region)
        self.window: int = params["window"]
        self.first_hop = first_hop

    def horizon_ms(self) -> int:
        return self.window

    concerns_src = "r.dataset_id is not None"

    def concerns(self, record: Record) -> bool:
        return record.dataset_id is not None

    def route(self, flow: Flow, matched: bool) -> list[tuple[str, dict[str, Any]]]:
        dataset = flow.record.dataset_id
        if dataset is None:
            return []
        out: list[tuple[str, dict[str, Any]]] = []
        key = f"{self.rule_id}|{flow.record.platform}|{dataset}"
        if self.first_hop(flow):
            out.append((key, {"role": "first", "flow": flow.to_state()}))
        if matched:
            out.append((key, {"role": "second", "flow": flow.to_state()}))
        return out

    def apply(self, store: Store, seen: SeenStore, key: str, item: Mapping[str, Any]) -> list[Hit]:
        return self.apply_many(store, seen, key, (item,))

    def apply_many(
        self, store: Store, seen: SeenStore, key: str, items: Iterable[Mapping[str, Any]]
    ) -> list[Hit]:
        value = store.get(key) or {"first": {}, "pending": []}
        hits: list[Hit] = []
        # Indexes for this call only: the stored value stays plain JSON.
        hop_ids = {c: {h["event_id"] for h in hops} for c, hops in value["first"].items()}
        pending: dict[str, dict[str, Any]] = {p["event_id"]: p for p in value["pending"]}
        waiting_from: dict[str, list[str]] = {}
        for p in pending.values():
            waiting_from.setdefault(p["src_country"], []).append(p["event_id"])
        for item in items:
            flow = item["flow"]
            if item["role"] == "first":
                country = flow["dst_country"]
                ids = hop_ids.setdefault(country, set())
                if flow["event_id"] in ids:
                    continue  # a repeated first hop changes nothing
                hop = {"event_id": flow["event_id"], "ts": flow["ts"], "source": flow["source"]}
                hops: list[dict[str, Any]] = value["first"].setdefault(country, [])
                insort(hops, hop, key=_hop_time)
                ids.add(hop["event_id"])
                for old in hops[: -self.MAX_PER_COUNTRY]:
                    ids.discard(old["event_id"])
                del hops[: -self.MAX_PER_COUNTRY]
                # Only second hops sent from this country can be waiting for it.
                still = []
                for event_id in waiting_from.get(country, ()):
                    second = pending.get(event_id)
                    if second is None:
                        continue
                    first = self._first_for(value, second)
                    if first is None:
                        still.append(event_id)
                    else:
                        del pending[event_id]
                        hits.append(single_hit(self.rule_id, second, first))
                waiting_from[country] = still
            else:
                first = self._first_for(value, flow)
                if first is not None:
                    hits.append(single_hit(self.rule_id, flow, first))
                elif flow["event_id"] not in pending:
                    pending[flow["event_id"]] = flow
                    waiting_from.setdefault(flow["src_country"], []).append(flow["event_id"])
                    if len(pending) > self.MAX_PENDING:
                        bounds.REACHED["hops"] += 1
                        del pending[next(iter(pending))]  # the oldest to arrive
        value["pending"] = list(pending.values())
        _keep_newest_hops(value["first"], bounds.MAX_FIRST_HOPS)
        store[key] = value
        return hits

    def _first_for(self, value: Mapping[str, Any], second: Mapping[str, Any]) -> Any:
        """The latest first hop home -> S that precedes the second hop within the window."""
        best = None
        for hop in value["first"].get(second["src_country"], ()):
            if hop["ts"] <= second["ts"] <= hop["ts"] + self.window:
                best = hop
        if best is not None and second["dst_country"] in (self.home, second["src_country"]):
            return None
        return best

    def expire(self, value: Any, watermark: int) -> Any:
        cutoff = watermark - self.window
        first = {c: [h for h in hops if h["ts"] > cutoff] for c, hops in value["first"].items()}
        first = {c: hops for c, hops in first.items() if hops}
        pending = [p for p in value["pending"] if p["ts"] > cutoff]
        return {"first": first, "pending": pending} if first or pending else None


class ConsentRule(RuleType):
    """Calls made on consent for subjects whose latest consent (event time) is withdrawn.

    State per (platform, subject): the consent history within the lateness
    allowance plus the latest older record, and the calls of the last
    allowance period, so a withdrawal that arrives late but precedes a call in
    event time still fires.
    """

    name = "consent"
    required = ("late_allowance",)
    # Keys the hash of subject ids in state keys; set from the configured
    # secret when the runtime loads (monitor.config.subject_key).
    subject_key: bytes = b""

    def __init__(self, rule_id: str, params: Mapping[str, Any], home_region: str) -> None:
        super().__init__(rule_id, params, home_region)
        self.allowance: int = params["late_allowance"]

    def horizon_ms(self) -> int:
        return self.allowance

    # Calls only: a consent record is of no kind the rule matches.
    concerns_src = "r.subject_ids"

    def concerns(self, record: Record) -> bool:
        return record.kind == "consent" or bool(record.subject_ids)

    def route(self, flow: Flow, matched: bool) -> list[tuple[str, dict[str, Any]]]:
        r = flow.record
        if r.kind == "consent" and r.scope == "overseas_transfer" and r.subject_id is not None:
            item = {
                "role": "consent",
                "event_id": r.event_id,
                "ts": r.ts,
                "granted": r.granted,
                "countries": list(r.countries),
            }
            subject = subject_hash(r.platform, r.subject_id, self.subject_key)
            return [(f"{self.rule_id}|{subject}", item)]
        if not matched or not r.subject_ids:
            return []
        state = flow.to_state()
        return [
            (
                f"{self.rule_id}|{subject_hash(r.platform, s, self.subject_key)}",
                {"role": "call", "flow": state},
            )
            for s in dict.fromkeys(r.subject_ids)
        ]

    def apply(self, store: Store, seen: SeenStore, key: str, item: Mapping[str, Any]) -> list[Hit]:
        return self.apply_many(store, seen, key, (item,))

    def apply_many(
        self, store: Store, seen: SeenStore, key: str, items: Iterable[Mapping[str, Any]]
    ) -> list[Hit]:
        value = store.get(key) or {"consents": [], "calls": []}
        consents: list[dict[str, Any]] = value["consents"]
        calls: list[dict[str, Any]] = value["calls"]
        # Indexes for this call only: the stored value stays plain JSON.
        consent_ids = {c["event_id"] for c in consents}
        call_ids = {c["flow"]["event_id"] for c in calls}
        hits: list[Hit] = []
        for item in items:
            if item["role"] == "consent":
                entry = {k: item[k] for k in ("event_id", "ts", "granted", "countries")}
                if entry["event_id"] in consent_ids:
                    continue
                consent_ids.add(entry["event_id"])
                insort(consents, entry, key=_consent_order)
                if len(consents) > bounds.MAX_CONSENTS_PER_SUBJECT:
                    # The newest decide for calls to come; a call older than
                    # every kept record can no longer be judged (counted).
                    bounds.REACHED["consents"] += 1
                    for old in consents[: -bounds.MAX_CONSENTS_PER_SUBJECT]:
                        consent_ids.discard(old["event_id"])
                    del consents[: -bounds.MAX_CONSENTS_PER_SUBJECT]
                # A late consent record can change the answer for calls already
                # seen: those at or after it in event time.
                for call in calls:
                    flow = call["flow"]
                    if (
                        not call["fired"]
                        and flow["ts"] >= entry["ts"]
                        and self._withdrawn(consents, flow)
                    ):
                        call["fired"] = True
                        hits.append(single_hit(self.rule_id, flow))
            else:
                flow = item["flow"]
                fired = self._withdrawn(consents, flow)
                if fired:
                    hits.append(single_hit(self.rule_id, flow))
                if flow["event_id"] not in call_ids:
                    call_ids.add(flow["event_id"])
                    calls.append({"flow": flow, "fired": fired})
                    if len(calls) > bounds.MAX_CALLS_PER_SUBJECT:
                        # A late withdrawal can still fire for the newest calls.
                        bounds.REACHED["calls"] += 1
                        calls.sort(key=_call_order)
                        for old in calls[: -bounds.MAX_CALLS_PER_SUBJECT]:
                            call_ids.discard(old["flow"]["event_id"])
                        del calls[: -bounds.MAX_CALLS_PER_SUBJECT]
        store[key] = value
        return hits

    @staticmethod
    def _withdrawn(consents: Iterable[Mapping[str, Any]], flow: Mapping[str, Any]) -> bool:
        """True when the latest consent at or before the call covering its country is a no."""
        latest = None
        country = flow["dst_country"]
        for c in consents:  # sorted by event time
            if c["ts"] > flow["ts"]:
                break
            if "*" in c["countries"] or country in c["countries"]:
                latest = c
        return latest is not None and latest["granted"] is False

    def expire(self, value: Any, watermark: int) -> Any:
        cutoff = watermark - self.allowance
        consents = value["consents"]
        old = [c for c in consents if c["ts"] <= cutoff]
        # The newest record older than the allowance still decides for later calls,
        # per covered country; keep every old record that is latest for some country.
        keep_old: list[Any] = []
        covered: set[str] = set()
        for c in reversed(old):
            scope = set(c["countries"])
            if "*" in covered:
                break
            if not scope <= covered:
                keep_old.append(c)
                covered |= scope
        keep = sorted(keep_old, key=lambda c: (c["ts"], c["event_id"])) + [
            c for c in consents if c["ts"] > cutoff
        ]
        calls = [c for c in value["calls"] if c["flow"]["ts"] > cutoff]
        return {"consents": keep, "calls": calls} if keep or calls else None


REGISTRY: dict[str, type[RuleType]] = {t.name: t for t in (ThresholdRule, OnwardRule, ConsentRule)}
