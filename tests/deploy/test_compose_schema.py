"""docker-compose.yml against the Compose Specification's JSON schema, as Compose loads it.

Compose interpolates the environment first and validates the result, so the
file is interpolated with sample values for the variables it requires
(`tests/support/compose.py`), then checked with the schema Docker Compose
itself embeds (vendored: tests/support/schemas/SOURCES.md).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import jsonschema
import pytest

from tests.support.compose import MissingVariable, interpolate, required_variables
from tests.support.deploy import DEPLOY, compose
from tests.support.paths import ROOT

SCHEMAS = ROOT / "tests" / "support" / "schemas"

# What a user puts in .env (deploy/README.md); values of the right shape, none real.
SAMPLE_ENV = {
    "XBORDER_SUBJECT_KEY": "c2FtcGxlLXN1YmplY3Qta2V5LW5vdC1yZWFs",
    "GRAFANA_ADMIN_PASSWORD": "sample-password",
    "CASE_OFFICERS_WEBHOOK_URL": "https://case-officers.invalid/alertmanager",
    "CASE_OFFICERS_TOKEN_FILE": "./demo-data/secrets/case_officers_token",
    "XBORDER_WEBHOOK_SECRET_FILE": "./demo-data/secrets/webhook_secret",
}

# Go's time.ParseDuration, which Compose reads these with.
GO_DURATION = re.compile(
    r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h)(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))*|0"
)


@cache
def schema() -> dict[str, Any]:
    path = SCHEMAS / "compose-spec.json"
    recorded = re.search(r"sha256: ([0-9a-f]{64})", (SCHEMAS / "SOURCES.md").read_text())
    assert recorded, "SOURCES.md records no sha256 for compose-spec.json"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == recorded[1], (
        "compose-spec.json differs from the vendored file SOURCES.md records"
    )
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema())
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
    ]


def loaded() -> dict[str, Any]:
    """The compose file as Compose sees it with SAMPLE_ENV set."""
    doc: dict[str, Any] = interpolate(copy.deepcopy(compose()), SAMPLE_ENV)
    return doc


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    assert errors(loaded()) == []


def test_sample_env_is_what_the_file_requires() -> None:
    assert required_variables(compose()) == set(SAMPLE_ENV)
    text = json.dumps(loaded())
    assert "${" not in text


@pytest.mark.parametrize("name", sorted(SAMPLE_ENV))
def test_each_required_variable_stops_compose_when_unset(name: str) -> None:
    env = {k: v for k, v in SAMPLE_ENV.items() if k != name}
    with pytest.raises(MissingVariable, match=name):
        interpolate(compose(), env)
    with pytest.raises(MissingVariable, match=name):
        interpolate(compose(), {**env, name: ""})  # `:?`: empty is refused too


def test_required_variables_are_in_the_compose_steps() -> None:
    """README's steps set every variable compose refuses to start without; deploy/README says what each is."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    steps = text[text.index("## Deploy and scale") : text.index("**Scaling.**")]
    missing = sorted(name for name in SAMPLE_ENV if f"\n{name}=" not in steps)
    assert not missing, f"not set by the compose steps of README.md: {missing}"
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    described = text[text.index("## Compose stack") : text.index("## Validating by hand")]
    missing = sorted(name for name in SAMPLE_ENV if f"`{name}`" not in described)
    assert not missing, f"not described in deploy/README.md: {missing}"


def test_durations_parse_as_compose_reads_them() -> None:
    for name, svc in loaded()["services"].items():
        values = [svc.get("stop_grace_period")]
        check = svc.get("healthcheck") or {}
        values += [check.get(k) for k in ("interval", "timeout", "start_period", "start_interval")]
        for value in filter(None, values):
            assert GO_DURATION.fullmatch(value), f"{name}: {value!r} is not a duration"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


# A mistake of each kind the schema must catch: were the validation unable to
# fail, these would pass.
BROKEN: dict[str, Callable[[dict[str, Any]], None]] = {
    "misspelled service key": _set("services.worker.healtcheck", {"test": ["CMD", "true"]}),
    "unknown depends_on condition": _set(
        "services.worker.depends_on.geoip-init", {"condition": "service_finished"}
    ),
    "ports not a list": _set("services.kafka.ports", "127.0.0.1:29092:29092"),
    "restart policy not a string": _set("services.kafka-init.restart", False),
    "volume list given as a mapping": _set("services.worker.volumes", {"geoip": "/data/geoip"}),
    "unknown top-level key": _set("service", {}),
}


@pytest.mark.parametrize("mistake", sorted(BROKEN))
def test_the_schema_catches_a_broken_compose_file(mistake: str) -> None:
    doc = loaded()
    BROKEN[mistake](doc)
    assert errors(doc), f"{mistake}: not caught"
