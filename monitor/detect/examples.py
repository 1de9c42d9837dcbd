"""Run every rule's examples: records that must fire the rule, and records that must not."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from monitor.config.disclosures import EndpointRegistry
from monitor.contract.decode import decode_line
from monitor.contract.schemas import DeadLetter
from monitor.detect.local import LocalDetector
from monitor.engine.model import Example, Rule, RulePack
from monitor.geo.resolve import Resolver, StaticLookup

__all__ = ["ExampleResult", "run_example", "run_examples"]


@dataclass(frozen=True)
class ExampleResult:
    rule: Rule
    example: Example
    ok: bool
    detail: str


def run_example(
    pack: RulePack, endpoints: EndpointRegistry, rule: Rule, ex: Example
) -> ExampleResult:
    detector = LocalDetector(pack, Resolver(StaticLookup(ex.geoip), endpoints))
    for i, raw in enumerate(ex.records):
        try:
            line = orjson.dumps(raw)
        except orjson.JSONEncodeError as e:  # e.g. an integer past 64 bits
            return ExampleResult(rule, ex, False, f"record {i + 1} is not JSON: {e}")
        got = decode_line(line, {"file": str(ex.location), "line": i + 1})
        if isinstance(got, DeadLetter) or got is None:
            reason = got.reason if got is not None else "blank"
            return ExampleResult(rule, ex, False, f"record {i + 1} is invalid: {reason}")
        detector.process(got, {"file": str(ex.location), "line": i + 1})
    count = sum(g["event_count"] for r, g in detector.open_groups() if r.id == rule.id)
    fired = count > 0
    if fired != ex.fires:
        return ExampleResult(rule, ex, False, f"expected fires={ex.fires}, got {count} matches")
    if ex.count is not None and count != ex.count:
        return ExampleResult(rule, ex, False, f"expected {ex.count} matching records, got {count}")
    return ExampleResult(rule, ex, True, f"{count} matching records")


def run_examples(pack: RulePack, endpoints: EndpointRegistry) -> Iterator[ExampleResult]:
    for rule in pack.rules:
        for ex in rule.examples:
            yield run_example(pack, endpoints, rule, ex)
