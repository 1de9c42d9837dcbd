"""Consent rules: calls made on consent for subjects who withdrew it."""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypedDict, final

from monitor import bounds
from monitor.contract.schemas import Consent, Record
from monitor.engine.model import Hit
from monitor.engine.ruletypes.base import RuleType, single_hit
from monitor.engine.state import SeenStore, Store, subject_hash
from monitor.geo.resolve import Flow, FlowState

__all__ = ["CallItem", "ConsentEntry", "ConsentItem", "ConsentRule", "ConsentState"]


class ConsentEntry(TypedDict):
    """What a consent record decides."""

    event_id: str
    ts: int
    granted: bool
    countries: list[str]  # or ["*"]


# Final: stages tell the items of rule types apart by their keys.
@final
class ConsentItem(ConsentEntry):
    role: Literal["consent"]


@final
class CallItem(TypedDict):
    role: Literal["call"]
    flow: FlowState


class Call(TypedDict):
    flow: FlowState
    fired: bool


class ConsentState(TypedDict):
    """A subject's consent records in event-time order, and its recent calls."""

    consents: list[ConsentEntry]
    calls: list[Call]


def _consent_order(consent: ConsentEntry) -> tuple[int, str]:
    return consent["ts"], consent["event_id"]


def _call_order(call: Call) -> tuple[int, str]:
    return call["flow"]["ts"], call["flow"]["event_id"]


class ConsentRule(RuleType[ConsentItem | CallItem, ConsentState]):
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

    def route(self, flow: Flow, matched: bool) -> list[tuple[str, ConsentItem | CallItem]]:
        r = flow.record
        if isinstance(r, Consent) and r.scope == "overseas_transfer":
            item: ConsentItem = {
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

    def apply(
        self, store: Store[ConsentState], seen: SeenStore, key: str, item: ConsentItem | CallItem
    ) -> list[Hit]:
        return self.apply_many(store, seen, key, (item,))

    def apply_many(
        self,
        store: Store[ConsentState],
        seen: SeenStore,
        key: str,
        items: Iterable[ConsentItem | CallItem],
    ) -> list[Hit]:
        value = store.get(key) or {"consents": [], "calls": []}
        consents = value["consents"]
        calls = value["calls"]
        # Indexes for this call only: the stored value stays plain JSON.
        consent_ids = {c["event_id"] for c in consents}
        call_ids = {c["flow"]["event_id"] for c in calls}
        hits: list[Hit] = []
        for item in items:
            if item["role"] == "consent":
                entry: ConsentEntry = {
                    "event_id": item["event_id"],
                    "ts": item["ts"],
                    "granted": item["granted"],
                    "countries": item["countries"],
                }
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
                        for dropped in calls[: -bounds.MAX_CALLS_PER_SUBJECT]:
                            call_ids.discard(dropped["flow"]["event_id"])
                        del calls[: -bounds.MAX_CALLS_PER_SUBJECT]
        store[key] = value
        return hits

    @staticmethod
    def _withdrawn(consents: Iterable[ConsentEntry], flow: FlowState) -> bool:
        """True when the latest consent at or before the call covering its country is a no."""
        latest = None
        country = flow["dst_country"]
        for c in consents:  # sorted by event time
            if c["ts"] > flow["ts"]:
                break
            if "*" in c["countries"] or country in c["countries"]:
                latest = c
        return latest is not None and latest["granted"] is False

    def expire(self, value: ConsentState, watermark: int) -> ConsentState | None:
        cutoff = watermark - self.allowance
        consents = value["consents"]
        old = [c for c in consents if c["ts"] <= cutoff]
        # The newest record older than the allowance still decides for later calls,
        # per covered country; keep every old record that is latest for some country.
        keep_old: list[ConsentEntry] = []
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
