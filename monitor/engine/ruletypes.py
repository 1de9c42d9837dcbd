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

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from monitor.engine.conditions import Predicate
from monitor.engine.model import Hit
from monitor.engine.state import SeenStore, Store, event_hash, scope_of, subject_hash
from monitor.resolve import Flow

__all__ = [
    "REGISTRY",
    "ConsentRule",
    "OnwardRule",
    "RuleType",
    "ThresholdRule",
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
    }


def settle_recent(seen: SeenStore, scope: str, recent: Iterable[int], expires: int) -> None:
    """Give the ids a state value names as `recent` their seen entries, before it forgets them.

    After a crash the state can come back without the seen entries of its last
    update (they are written after it); `recent` covers them only until the
    state's next update replaces it. A duplicate of such a record arriving
    later (another copy of it, re-sent by a restarted upstream agent) would
    then be counted again.
    """
    for i in recent:
        if not seen.contains(scope, i):
            seen.add(scope, i, expires)


class RuleType:
    """Base of the stateful rule types; `name` is the `type:` of a rule in YAML."""

    name: ClassVar[str]
    # Parameters the type reads from the rule's `params`, with their kinds.
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, rule_id: str, params: Mapping[str, Any], home_region: str) -> None:
        self.rule_id = rule_id
        self.params = params
        self.home = home_region

    def route(self, flow: Flow, matched: bool) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def apply(self, store: Store, seen: SeenStore, key: str, item: Mapping[str, Any]) -> list[Hit]:
        raise NotImplementedError

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

    When a window crosses, a hit carries the window's totals (every record of
    it so far); each later record of the window sends the new totals.
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

    def route(self, flow: Flow, matched: bool) -> list[tuple[str, dict[str, Any]]]:
        if not matched:
            return []
        state = flow.to_state()
        key = "|".join([self.rule_id, *(str(state[f]) for f in self.per)])
        return [(key, state)]

    def horizon_ms(self) -> int:
        return self.window + self.lateness

    def apply(self, store: Store, seen: SeenStore, key: str, item: Mapping[str, Any]) -> list[Hit]:
        ts = item["ts"]
        start = ts - ts % self.window
        value = store.get(key) or {"windows": {}}
        windows: dict[str, Any] = value["windows"]
        w = windows.get(str(start))
        if w is None:
            w = windows[str(start)] = {"fired": False, "agg": self._empty(item, ts)}
        h = event_hash(item["platform"], item["event_id"])
        scope = scope_of(key, start)
        agg = w["agg"]

        def totals(evidence: list[dict[str, Any]]) -> list[Hit]:
            return [window_hit(self.rule_id, event_hash(key, f"window:{start}"), agg, evidence)]

        if h in w.get("recent", ()) or seen.contains(scope, h):
            # A redelivered record. Should its window's hit have been lost
            # while the window was saved, a fired window sends it again (the
            # alert group ignores totals it already has).
            return totals(agg["evidence"]) if w["fired"] else []
        _merge_into(agg, single_hit(self.rule_id, item))
        crossed = not w["fired"] and agg[self.field] >= self.threshold
        # The window (naming this record in `recent`) is written before its
        # seen-id: see AlertGrouper.add for why the order matters.
        w["fired"] = w["fired"] or crossed
        expires = start + self.horizon_ms()
        settle_recent(seen, scope, w.get("recent", ()), expires)
        w["recent"] = [h]
        store[key] = value
        seen.add(scope, h, expires)
        if not w["fired"]:
            return []
        if crossed:
            return totals(agg["evidence"])
        return totals(
            [e for e in agg["evidence"] if (e["ts"], e["event_id"]) == (ts, item["event_id"])]
        )

    def _empty(self, item: Mapping[str, Any], ts: int) -> dict[str, Any]:
        fields: dict[str, Any] = {f: None for f in ("src_country", "dataset_id")}
        fields |= {
            "platform": item["platform"],
            "dst_country": item["dst_country"],
            "subject_region": item["subject_region"],
        }
        fields |= {f: item[f] for f in self.per}
        return {
            "fields": fields,
            "first_seen": ts,
            "last_seen": ts,
            "event_count": 0,
            "bytes": 0,
            "records": 0,
            "categories": [],
            "evidence": [],
        }

    def expire(self, value: Any, watermark: int) -> Any:
        keep = {s: w for s, w in value["windows"].items() if int(s) + self.horizon_ms() > watermark}
        return {"windows": keep} if keep else None

    def closed_scopes(self, key: str, value: Any, watermark: int) -> list[str]:
        return [f"{key}|{s}" for s in value["windows"] if int(s) + self.horizon_ms() <= watermark]


def _merge_into(agg: dict[str, Any], hit: Mapping[str, Any]) -> None:
    agg["first_seen"] = min(agg["first_seen"], hit["first_seen"])
    agg["last_seen"] = max(agg["last_seen"], hit["last_seen"])
    agg["event_count"] += hit["event_count"]
    agg["bytes"] += hit["bytes"]
    agg["records"] += hit["records"]
    agg["categories"] = sorted(set(agg["categories"]) | set(hit["categories"]))
    evidence = agg["evidence"] + hit["evidence"]
    evidence.sort(key=lambda e: (e["ts"], e["event_id"]))
    agg["evidence"] = evidence[:MAX_EVIDENCE]


class OnwardRule(RuleType):
    """A dataset that went home -> S, then S -> a third country, within a window.

    State per (platform, dataset): first hops by country S, and second hops
    still waiting for their first hop (so arrival order does not matter: event
    time decides).
    """

    name = "onward"
    required = ("window",)
    MAX_PER_COUNTRY = 64
    MAX_PENDING = 1024

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
        value = store.get(key) or {"first": {}, "pending": []}
        flow = item["flow"]
        hits: list[Hit] = []
        if item["role"] == "first":
            hop = {"event_id": flow["event_id"], "ts": flow["ts"], "source": flow["source"]}
            hops: list[dict[str, Any]] = value["first"].setdefault(flow["dst_country"], [])
            if all(h["event_id"] != hop["event_id"] for h in hops):
                hops.append(hop)
                hops.sort(key=lambda h: h["ts"])
                del hops[: -self.MAX_PER_COUNTRY]
            waiting = []
            for second in value["pending"]:
                first = self._first_for(value, second)
                if first is None:
                    waiting.append(second)
                else:
                    hits.append(single_hit(self.rule_id, second, first))
            value["pending"] = waiting
        else:
            first = self._first_for(value, flow)
            if first is not None:
                hits.append(single_hit(self.rule_id, flow, first))
            elif all(p["event_id"] != flow["event_id"] for p in value["pending"]):
                value["pending"].append(flow)
                del value["pending"][: -self.MAX_PENDING]
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

    def __init__(self, rule_id: str, params: Mapping[str, Any], home_region: str) -> None:
        super().__init__(rule_id, params, home_region)
        self.allowance: int = params["late_allowance"]

    def horizon_ms(self) -> int:
        return self.allowance

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
            return [(f"{self.rule_id}|{subject_hash(r.platform, r.subject_id)}", item)]
        if not matched or not r.subject_ids:
            return []
        state = flow.to_state()
        return [
            (f"{self.rule_id}|{subject_hash(r.platform, s)}", {"role": "call", "flow": state})
            for s in dict.fromkeys(r.subject_ids)
        ]

    def apply(self, store: Store, seen: SeenStore, key: str, item: Mapping[str, Any]) -> list[Hit]:
        value = store.get(key) or {"consents": [], "calls": []}
        hits: list[Hit] = []
        if item["role"] == "consent":
            entry = {k: item[k] for k in ("event_id", "ts", "granted", "countries")}
            if all(c["event_id"] != entry["event_id"] for c in value["consents"]):
                value["consents"].append(entry)
                value["consents"].sort(key=lambda c: (c["ts"], c["event_id"]))
                # A late consent record can change the answer for calls already seen.
                for call in value["calls"]:
                    if not call["fired"] and self._withdrawn(value["consents"], call["flow"]):
                        call["fired"] = True
                        hits.append(single_hit(self.rule_id, call["flow"]))
        else:
            flow = item["flow"]
            fired = self._withdrawn(value["consents"], flow)
            if fired:
                hits.append(single_hit(self.rule_id, flow))
            if all(c["flow"]["event_id"] != flow["event_id"] for c in value["calls"]):
                value["calls"].append({"flow": flow, "fired": fired})
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
