"""Onward-transfer rules: home -> S, then S -> a third country, within a window; and on along the chain."""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypedDict, final

from monitor import bounds
from monitor.contract.schemas import Record
from monitor.engine.conditions import Predicate
from monitor.engine.model import Hit, RecordRef
from monitor.engine.ruletypes.base import RuleType, single_hit
from monitor.engine.state import SeenStore, Store
from monitor.geo.resolve import Flow, FlowState

__all__ = ["OnwardItem", "OnwardRule", "OnwardState"]


# Final: stages tell the items of rule types apart by their keys.
@final
class OnwardItem(TypedDict):
    role: Literal["first", "second"]
    flow: FlowState


class OnwardState(TypedDict):
    """A dataset's first hops by the country they went to, and second hops waiting for one."""

    first: dict[str, list[RecordRef]]  # each list in event-time order
    pending: list[FlowState]  # in the order they arrived


def _keep_newest_hops(first: dict[str, list[RecordRef]], limit: int) -> None:
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


def _hop_time(hop: RecordRef) -> int:
    return int(hop["ts"])


# Earlier hops an onward hop's evidence names; a longer chain keeps its latest.
MAX_CHAIN = 8


def _ref(hop: RecordRef | FlowState) -> RecordRef:
    """The hop as evidence names it, without the hops before it."""
    return {"event_id": hop["event_id"], "ts": hop["ts"], "source": hop["source"]}


class OnwardRule(RuleType[OnwardItem, OnwardState]):
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

    def route(self, flow: Flow, matched: bool) -> list[tuple[str, OnwardItem]]:
        dataset = flow.record.dataset_id
        if dataset is None:
            return []
        out: list[tuple[str, OnwardItem]] = []
        key = f"{self.rule_id}|{flow.record.platform}|{dataset}"
        if self.first_hop(flow):
            out.append((key, {"role": "first", "flow": flow.to_state()}))
        if matched:
            out.append((key, {"role": "second", "flow": flow.to_state()}))
        return out

    def apply(
        self, store: Store[OnwardState], seen: SeenStore, key: str, item: OnwardItem
    ) -> list[Hit]:
        return self.apply_many(store, seen, key, (item,))

    def apply_many(
        self, store: Store[OnwardState], seen: SeenStore, key: str, items: Iterable[OnwardItem]
    ) -> list[Hit]:
        value = store.get(key) or {"first": {}, "pending": []}
        hits: list[Hit] = []
        # Indexes for this call only: the stored value stays plain JSON.
        hop_ids = {c: {h["event_id"] for h in hops} for c, hops in value["first"].items()}
        pending = {p["event_id"]: p for p in value["pending"]}
        waiting_from: dict[str | None, list[str]] = {}
        for p in pending.values():
            waiting_from.setdefault(p["src_country"], []).append(p["event_id"])
        # Countries the dataset reached, each with the hop that took it there:
        # first hops from home, and onward hops that fired (a chain home -> S
        # -> T -> U fires for T -> U too). Each waits on the queue until the
        # second hops sent from its country have been looked at again.
        reached: list[tuple[str, RecordRef]] = []

        def fire(second: FlowState, first: RecordRef) -> None:
            hits.append(single_hit(self.rule_id, second, first))
            country = second["dst_country"]
            if country is not None:
                via = [*first.get("via", ()), _ref(first)][-MAX_CHAIN:]
                reached.append((country, {**_ref(second), "via": via}))

        for item in items:
            flow = item["flow"]
            if item["role"] == "first":
                if flow["dst_country"] is None:
                    # No country S to be sent on from; nor a key JSON can hold.
                    continue
                reached.append((flow["dst_country"], _ref(flow)))
            else:
                first = self._first_for(value, flow)
                if first is not None:
                    fire(flow, first)
                elif flow["event_id"] not in pending:
                    pending[flow["event_id"]] = flow
                    waiting_from.setdefault(flow["src_country"], []).append(flow["event_id"])
                    if len(pending) > self.MAX_PENDING:
                        bounds.REACHED["hops"] += 1
                        del pending[next(iter(pending))]  # the oldest to arrive
            while reached:
                country, hop = reached.pop(0)
                ids = hop_ids.setdefault(country, set())
                if hop["event_id"] in ids:
                    continue  # a repeated hop changes nothing
                hops = value["first"].setdefault(country, [])
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
                        fire(second, first)
                waiting_from[country] = still
        value["pending"] = list(pending.values())
        _keep_newest_hops(value["first"], bounds.MAX_FIRST_HOPS)
        store[key] = value
        return hits

    def _first_for(self, value: OnwardState, second: FlowState) -> RecordRef | None:
        """The latest first hop home -> S that precedes the second hop within the window."""
        src = second["src_country"]
        if src is None:
            return None  # first hops are kept only to a country
        best = None
        for hop in value["first"].get(src, ()):
            if hop["ts"] <= second["ts"] <= hop["ts"] + self.window:
                best = hop
        if best is not None and second["dst_country"] in (self.home, second["src_country"]):
            return None
        return best

    def expire(self, value: OnwardState, watermark: int) -> OnwardState | None:
        cutoff = watermark - self.window
        first = {c: [h for h in hops if h["ts"] > cutoff] for c, hops in value["first"].items()}
        first = {c: hops for c, hops in first.items() if hops}
        pending = [p for p in value["pending"] if p["ts"] > cutoff]
        return {"first": first, "pending": pending} if first or pending else None
