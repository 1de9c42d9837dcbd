"""Stateful rule types: threshold windows, onward transfers, consent state.

One file per type, each a subclass of `base.RuleType`. To add a type, write
its module here and add its class to `REGISTRY` below: the loader looks up a
rule's `type:` there, checks the type's `required` params and builds it (a
type that needs more than its params, as onward its `first_hop` condition,
also gets a case in `monitor.engine.loader._make_type`).

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

from monitor.engine.ruletypes.base import AnyRuleType
from monitor.engine.ruletypes.consent import CallItem, ConsentItem, ConsentRule, ConsentState
from monitor.engine.ruletypes.onward import OnwardItem, OnwardRule, OnwardState
from monitor.engine.ruletypes.threshold import ThresholdRule, ThresholdState, WindowItem

__all__ = ["REGISTRY", "StateItem", "StateValue"]

REGISTRY: dict[str, type[AnyRuleType]] = {
    t.name: t for t in (ThresholdRule, OnwardRule, ConsentRule)
}

# What any rule type routes, and keeps under a state key.
StateItem = WindowItem | OnwardItem | ConsentItem | CallItem
StateValue = ThresholdState | OnwardState | ConsentState
