"""Which receivers an alert goes to: receivers and a route tree, read from YAML.

The shape is Alertmanager's. `receivers:` lists destinations; `route:` is a
tree whose root takes every alert and whose children (`routes:`) match on
the alert's fields. Children are tried in order and the first that matches
takes the alert, unless it says `continue: true`: then the next ones are
tried too (fan-out). A node none of whose children match delivers to its own
receiver; a child that names none delivers to its parent's. After routing,
each receiver drops the alerts below its `min_severity`.

No secret sits in the file: a receiver names the environment variable
(`secret_env`) or the file (`secret_file`) holding its signing key, read at
load. Every problem is collected and reported with the file and line; none
shows a secret, or a URL beyond the fact that it is wrong.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from monitor.alerts.grouping import Alert
from monitor.config.yamlfile import LDict, LList, kind_of, load_yaml, location_of, mapping_at, token
from monitor.contract.countries import ISO_ALPHA2
from monitor.delivery.model import SEVERITIES, Receiver, severity_rank
from monitor.delivery.receivers import ReceiverReader
from monitor.errors import ConfigError, ConfigErrors, Location

__all__ = [
    "DeliveryConfig",
    "Match",
    "Route",
    "load_delivery",
    "receivers_for",
]

_TOP_KEYS: Final = frozenset({"receivers", "route"})
_ROOT_KEYS: Final = frozenset({"receiver", "routes"})
_ROUTE_KEYS: Final = frozenset({"receiver", "match", "continue", "routes"})
_MATCH_KEYS: Final = frozenset(
    {"platform", "rule_id", "severity", "min_severity", "src_country", "dst_country"}
)


@dataclass(frozen=True, slots=True)
class Match:
    """Conditions on an alert, all of which must hold; a field left None accepts any value."""

    platform: frozenset[str] | None = None
    rule_id: frozenset[str] | None = None
    severity: frozenset[str] | None = None
    min_severity: str | None = None
    src_country: frozenset[str] | None = None
    dst_country: frozenset[str] | None = None

    def matches(self, alert: Alert) -> bool:
        pairs = (
            (self.platform, alert["platform"]),
            (self.rule_id, alert["rule_id"]),
            (self.severity, alert["severity"]),
            (self.src_country, alert["src_country"]),
            (self.dst_country, alert["dst_country"]),
        )
        if any(accepted is not None and value not in accepted for accepted, value in pairs):
            return False
        return self.min_severity is None or severity_rank(alert["severity"]) >= severity_rank(
            self.min_severity
        )


@dataclass(frozen=True, slots=True)
class Route:
    """A node of the route tree; the root's `match` is empty (it takes every alert)."""

    receiver: Receiver
    match: Match = Match()
    continue_: bool = False
    routes: tuple[Route, ...] = ()
    location: Location | None = None


def receivers_for(alert: Alert, route: Route | None) -> list[str]:
    """Names of the receivers `alert` goes to, in route order, each once, each admitting
    the alert's severity."""
    if route is None or not route.match.matches(alert):
        return []
    found: dict[str, Receiver] = {}
    for receiver in _walk(alert, route):
        found.setdefault(receiver.name, receiver)
    rank = severity_rank(alert["severity"])
    return [name for name, r in found.items() if rank >= severity_rank(r.min_severity)]


def _walk(alert: Alert, node: Route) -> Iterator[Receiver]:
    matched = False
    for child in node.routes:
        if child.match.matches(alert):
            matched = True
            yield from _walk(alert, child)
            if not child.continue_:
                break
    if not matched:
        yield node.receiver


@dataclass(frozen=True)
class DeliveryConfig:
    """Receivers by name and the route tree; no route: nothing is delivered."""

    receivers: Mapping[str, Receiver]
    route: Route | None
    source: str | None = None  # the file read, None when there was none

    def receivers_for(self, alert: Alert) -> list[Receiver]:
        return [self.receivers[name] for name in receivers_for(alert, self.route)]

    def route_count(self) -> int:
        """Nodes below the root, for a summary line."""

        def count(node: Route) -> int:
            return sum(1 + count(child) for child in node.routes)

        return 0 if self.route is None else count(self.route)


def load_delivery(
    path: Path,
    allowed_roots: Sequence[Path],
    env: Mapping[str, str],
    *,
    resolve: bool = True,
    rule_ids: Collection[str] | None = None,
) -> DeliveryConfig:
    """Read and validate the delivery configuration at `path`.

    `resolve`: read every receiver's secret (from `env` or its file) and check
    the files named exist; off, the file's shape alone is checked (where the
    deployment's secrets are absent, as in CI). `rule_ids`: the rule pack's
    ids, when a route matching on another one is a mistake to report. Raises
    ConfigErrors with every problem found.
    """
    doc = load_yaml(path, allowed_roots)
    if doc is None:
        return DeliveryConfig({}, None, str(path))
    if not isinstance(doc, LDict):
        raise ConfigError(
            "the delivery configuration must be a mapping (receivers:, route:)", doc.loc()
        )
    reader = _Reader(path.parent, env, resolve, rule_ids)
    reader.unknown_keys(doc, _TOP_KEYS, "the delivery configuration")
    receivers = reader.receivers(doc)
    route = reader.root(doc, receivers)
    if reader.errors:
        raise ConfigErrors(reader.errors)
    return DeliveryConfig(receivers, route, str(path))


class _Reader(ReceiverReader):
    """One pass over a delivery file, collecting every error: receivers, then routes."""

    def __init__(
        self,
        base: Path,
        env: Mapping[str, str],
        resolve: bool,
        rule_ids: Collection[str] | None,
    ) -> None:
        super().__init__(base, env, resolve)
        self.rule_ids = rule_ids

    def root(self, doc: LDict, receivers: Mapping[str, Receiver]) -> Route | None:
        node = doc.get("route")
        if node is None:
            if self.names:
                self.error("receivers are defined but no 'route' sends alerts to them", doc.loc())
            return None
        if not isinstance(node, LDict):
            self.error(f"'route' must be a mapping, got {kind_of(node)}", doc.loc("route"))
            return None
        for key in ("match", "continue"):
            if key in node:
                self.error(
                    f"the root route takes every alert: '{key}' belongs in its routes",
                    node.loc(key),
                )
        self.unknown_keys(node, _ROOT_KEYS | {"match", "continue"}, "route")
        if "receiver" not in node:
            self.error("the root route needs a 'receiver'", doc.loc("route"))
        return self.route(node, None, receivers)

    def route(
        self, node: LDict, parent: Receiver | None, receivers: Mapping[str, Receiver]
    ) -> Route:
        if parent is not None:
            self.unknown_keys(node, _ROUTE_KEYS, "route")
        receiver = self.route_receiver(node, parent, receivers)
        match = self.match(node) if parent is not None else Match()
        go_on = node.get("continue", False)
        if not isinstance(go_on, bool):
            self.error(
                f"continue must be true or false, got {kind_of(go_on)}", node.loc("continue")
            )
            go_on = False
        children: list[Route] = []
        routes = node.get("routes")
        if isinstance(routes, LList):
            for i, child in enumerate(routes):
                if isinstance(child, LDict):
                    children.append(self.route(child, receiver, receivers))
                else:
                    self.error(f"a route must be a mapping, got {kind_of(child)}", routes.loc(i))
        elif routes is not None:
            self.error(f"'routes' must be a list, got {kind_of(routes)}", node.loc("routes"))
        return Route(receiver, match, go_on, tuple(children), node.loc())

    def route_receiver(
        self, node: LDict, parent: Receiver | None, receivers: Mapping[str, Receiver]
    ) -> Receiver:
        name = node.get("receiver")
        if name is None and parent is not None:
            return parent
        if isinstance(name, str) and name in receivers:
            return receivers[name]
        if name is not None and not (isinstance(name, str) and name in self.names):
            self.error(f"unknown receiver {token(name)}", node.loc("receiver"))
        # Reached only with an error reported (here, at the receiver's entry or for a
        # root without a receiver): the tree is never returned.
        return Receiver(name=str(name), url="")

    def match(self, node: LDict) -> Match:
        m = mapping_at(node, "match", self.errors)
        self.unknown_keys(m, _MATCH_KEYS, "match")
        min_severity = m.get("min_severity")
        if min_severity is not None and min_severity not in SEVERITIES:
            self.error(
                f"match: min_severity must be one of {', '.join(SEVERITIES)}, "
                f"got {token(min_severity)}",
                m.loc("min_severity"),
            )
            min_severity = None
        return Match(
            platform=self.values(m, "platform"),
            rule_id=self.values(m, "rule_id"),
            severity=self.values(m, "severity"),
            min_severity=min_severity,
            src_country=self.values(m, "src_country"),
            dst_country=self.values(m, "dst_country"),
        )

    def values(self, m: LDict, key: str) -> frozenset[str] | None:
        """One value or a list of them, each checked as `key` wants."""
        if key not in m:
            return None
        raw = m[key]
        if isinstance(raw, LList):
            items = [(item, raw.loc(i)) for i, item in enumerate(raw)]
            if not items:
                self.error(f"match: {key} lists no value", m.loc(key))
        else:
            items = [(raw, location_of(raw, m.file, m.loc(key)))]
        accepted: set[str] = set()
        for item, loc in items:
            problem = self.value_problem(key, item)
            if problem:
                self.error(f"match: {key} {problem}, got {token(item)}", loc)
            else:
                accepted.add(item)
        return frozenset(accepted)

    def value_problem(self, key: str, value: object) -> str | None:
        if not isinstance(value, str) or not value:
            return "must be text or a list of text"
        if key == "severity" and value not in SEVERITIES:
            return f"must be one of {', '.join(SEVERITIES)}"
        if key.endswith("_country") and value not in ISO_ALPHA2:
            return "must be an ISO 3166-1 alpha-2 code"
        if key == "rule_id" and self.rule_ids is not None and value not in self.rule_ids:
            return "names no rule of the pack"
        return None
