"""Receivers and routes: which receivers an alert reaches, and every mistake in the file
named with its file and line, no secret in any message."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path
from typing import Any, cast

import pytest

from monitor.alerts.grouping import Alert
from monitor.config.settings import default_rules_dir
from monitor.delivery.model import Receiver
from monitor.delivery.routing import DeliveryConfig, load_delivery, receivers_for
from monitor.errors import ConfigError, ConfigErrors

SECRET = "a-webhook-secret-nobody-may-read"
ENV = {"CASE_SECRET": SECRET, "SIEM_SECRET": SECRET + "-siem"}


def alert(**fields: Any) -> Alert:
    base: dict[str, Any] = {
        "alert_id": "a1",
        "rule_id": "pipa.no_legal_basis",
        "severity": "medium",
        "platform": "shopapp",
        "src_country": "KR",
        "dst_country": "CN",
        "revision": 1,
    }
    return cast(Alert, {**base, **fields})


def write(tmp_path: Path, text: str, name: str = "delivery.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] = ENV, **kw: Any) -> DeliveryConfig:
    return load_delivery(write(tmp_path, text), [tmp_path], env, **kw)


def errors(tmp_path: Path, text: str, env: dict[str, str] = ENV, **kw: Any) -> list[str]:
    with pytest.raises((ConfigError, ConfigErrors)) as caught:
        load(tmp_path, text, env, **kw)
    found = caught.value.errors if isinstance(caught.value, ConfigErrors) else [caught.value]
    return [str(e) for e in found]


def at(tmp_path: Path, text: str, marker: str) -> str:
    """`file:line` of the line of `text` holding `marker`."""
    lines = textwrap.dedent(text).lstrip().splitlines()
    line = next(i for i, content in enumerate(lines, 1) if marker in content)
    return f"{tmp_path / 'delivery.yaml'}:{line}"


RECEIVERS = """
receivers:
  - {name: a, url: "https://a.example.org/hook", secret_env: CASE_SECRET}
  - {name: b, url: "https://b.example.org/hook", secret_env: CASE_SECRET}
  - {name: c, url: "https://c.example.org/hook"}
  - {name: urgent, url: "https://u.example.org/hook", min_severity: high}
"""


def routed(tmp_path: Path, route: str, **fields: Any) -> list[str]:
    config = load(tmp_path, RECEIVERS + textwrap.dedent(route))
    return receivers_for(alert(**fields), config.route)


# --- routing -------------------------------------------------------------------------

ROUTES = """
route:
  receiver: a
  routes:
    - match: {platform: shopapp}
      receiver: b
    - match: {severity: medium}
      receiver: c
"""


def test_the_first_matching_route_wins(tmp_path: Path) -> None:
    assert routed(tmp_path, ROUTES) == ["b"]
    assert routed(tmp_path, ROUTES, platform="other") == ["c"]


def test_an_alert_no_route_matches_goes_to_the_root(tmp_path: Path) -> None:
    assert routed(tmp_path, ROUTES, platform="other", severity="low") == ["a"]


def test_continue_fans_out_and_each_receiver_is_named_once(tmp_path: Path) -> None:
    route = """
    route:
      receiver: a
      routes:
        - {match: {platform: shopapp}, receiver: b, continue: true}
        - {match: {dst_country: CN}, receiver: c, continue: true}
        - {match: {src_country: KR}, receiver: b}
        - {receiver: a}
    """
    assert routed(tmp_path, route) == ["b", "c"]
    # The root's receiver is not added to a fan-out: a last catch-all route does that.
    assert routed(tmp_path, route, src_country="JP") == ["b", "c", "a"]


def test_nested_routes_and_an_inherited_receiver(tmp_path: Path) -> None:
    route = """
    route:
      receiver: a
      routes:
        - match: {dst_country: [CN, RU]}
          receiver: b
          routes:
            - match: {rule_id: pipa.onward_transfer}
              receiver: c
            - match: {severity: critical}
    """
    assert routed(tmp_path, route) == ["b"]
    assert routed(tmp_path, route, rule_id="pipa.onward_transfer") == ["c"]
    assert routed(tmp_path, route, severity="critical") == ["b"]  # inherits b
    assert routed(tmp_path, route, dst_country="US") == ["a"]


def test_lists_match_any_value_and_min_severity_any_above(tmp_path: Path) -> None:
    route = """
    route:
      receiver: a
      routes:
        - {match: {severity: [high, critical], platform: [x, shopapp]}, receiver: b}
        - {match: {min_severity: medium}, receiver: c}
    """
    assert routed(tmp_path, route, severity="high") == ["b"]
    assert routed(tmp_path, route, severity="critical", platform="x") == ["b"]
    assert routed(tmp_path, route, severity="high", platform="y") == ["c"]
    assert routed(tmp_path, route, severity="medium") == ["c"]
    assert routed(tmp_path, route, severity="low") == ["a"]
    # A severity a newer pack brings ranks above every known one.
    assert routed(tmp_path, route, severity="catastrophic") == ["c"]


def test_an_alert_without_a_country_matches_no_country(tmp_path: Path) -> None:
    route = """
    route:
      receiver: a
      routes: [{match: {dst_country: CN}, receiver: b}]
    """
    assert routed(tmp_path, route, dst_country=None) == ["a"]


def test_each_receiver_drops_alerts_below_its_min_severity_after_routing(
    tmp_path: Path,
) -> None:
    route = """
    route:
      receiver: a
      routes:
        - {match: {platform: shopapp}, receiver: urgent, continue: true}
        - {match: {platform: shopapp}, receiver: b}
        - {match: {platform: other}, receiver: urgent}
    """
    assert routed(tmp_path, route, severity="high") == ["urgent", "b"]
    assert routed(tmp_path, route, severity="medium") == ["b"]
    # Dropped, not routed elsewhere: the route chose the receiver, its filter said no.
    assert routed(tmp_path, route, severity="medium", platform="other") == []


def test_no_route_no_receiver(tmp_path: Path) -> None:
    assert receivers_for(alert(), None) == []
    empty = load(tmp_path, "")
    assert empty.receivers == {} and empty.route is None
    assert empty.receivers_for(alert()) == []


def test_the_config_gives_receivers_with_their_settings(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        receivers:
          - name: siem
            url: https://siem.example.org/ocsf
            format: ocsf
            min_severity: high
            secret_env: SIEM_SECRET
            tls_verify: true
            ca_file: ca.pem
            timeout: 500ms
            max_attempts: 3
            backoff: {initial: 2s, max: 1m}
            breaker: {failures: 2, reset: 5m}
        route: {receiver: siem}
        """,
        resolve=False,
    )
    assert config.receivers_for(alert(severity="critical")) == [config.receivers["siem"]]
    assert config.receivers["siem"] == Receiver(
        name="siem",
        url="https://siem.example.org/ocsf",
        format="ocsf",
        min_severity="high",
        secret=None,  # not resolved
        ca_file=str(tmp_path / "ca.pem"),
        timeout_s=0.5,
        max_attempts=3,
        backoff_initial_s=2.0,
        backoff_max_s=60.0,
        breaker_failures=2,
        breaker_reset_s=300.0,
    )
    assert config.route_count() == 0


def test_secrets_from_env_or_file_and_standard_webhooks_form(tmp_path: Path) -> None:
    key = bytes(range(32))
    (tmp_path / "siem.key").write_text("whsec_" + base64.b64encode(key).decode() + "\n")
    config = load(
        tmp_path,
        """
        receivers:
          - {name: a, url: "http://127.0.0.1:8790/alerts", secret_env: CASE_SECRET}
          - {name: b, url: "https://b.example.org/", secret_file: siem.key}
        route: {receiver: a, routes: [{receiver: b, continue: true}, {receiver: a}]}
        """,
    )
    assert config.receivers["a"].secret == SECRET.encode()
    assert config.receivers["b"].secret == key
    assert config.route_count() == 2
    assert SECRET not in repr(config)


def test_the_bundled_delivery_file_sends_every_alert_to_the_case_officers() -> None:
    path = default_rules_dir() / "config" / "delivery.yaml"
    config = load_delivery(path, [path.parent], {"XBORDER_WEBHOOK_SECRET": SECRET})
    for severity in ("low", "medium", "high", "critical"):
        assert receivers_for(alert(severity=severity), config.route) == ["case-officers"]
    assert config.receivers["case-officers"].url.startswith("http://127.0.0.1:8790/")
    assert load_delivery(path, [path.parent], {}, resolve=False).receivers["case-officers"]


# --- errors, each with file and line ---------------------------------------------------

BAD_ROUTE = """
receivers:
  - {name: a, url: "https://a.example.org/"}
route:
  receiver: a
  routes:
    - match: {platform: x}
      receiver: nobody
    - match:
        severity: [high, urgent]
        min_severity: extreme
        dst_country: [CN, XX]
        src_country: Korea
        rule_id: pipa.no_such_rule
        region: KR
      continue: "yes"
    - match: {platform: []}
      receivers: a
"""


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("receiver: nobody", "unknown receiver 'nobody'"),
        ("severity: [high, urgent]", "match: severity must be one of low, medium, high, critical"),
        ("min_severity: extreme", "match: min_severity must be one of"),
        (
            "dst_country: [CN, XX]",
            "match: dst_country must be an ISO 3166-1 alpha-2 code, got 'XX'",
        ),
        ("src_country: Korea", "got 'Korea'"),
        ("rule_id: pipa.no_such_rule", "match: rule_id names no rule of the pack"),
        ("region: KR", "match: unknown keys ['region']"),
        ('continue: "yes"', "continue must be true or false"),
        ("platform: []", "match: platform lists no value"),
        ("receivers: a", "route: unknown keys ['receivers']"),
    ],
)
def test_route_errors_name_file_and_line(tmp_path: Path, marker: str, message: str) -> None:
    found = errors(tmp_path, BAD_ROUTE, rule_ids={"pipa.no_legal_basis"})
    assert len(found) == 10  # every one, in one pass
    assert any(e.startswith(at(tmp_path, BAD_ROUTE, marker) + ": ") and message in e for e in found)


BAD_RECEIVERS = """
receivers:
  - name: a
    url: ftp://a.example.org/
    format: xml
    min_severity: severe
    colour: red
  - name: b
    url: "https://user:pw-in-url-123@b.example.org/"
    secret: inline-secret-value-1234
    timeout: soon
    max_attempts: 0
    backoff: {initial: 10m, max: 1m}
    breaker: {failures: many, reset: 30s, after: 1}
  - name: c
    url: "https:///no-host"
    tls_verify: "no"
  - name: a
    url: "http://[::1"
  - name: "bad name!"
    url: "https://d.example.org/"
  - just a string
route:
  receiver: a
"""


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("url: ftp://", "receiver 'a': url must be an http:// or https:// URL with a host"),
        ("format: xml", "format must be one of native, cloudevents, ocsf, alertmanager"),
        ("min_severity: severe", "min_severity must be one of low, medium, high, critical"),
        ("colour: red", "receiver 'a': unknown keys ['colour']"),
        ("user:pw-in-url", "url must not carry a user or password"),
        ("secret: inline", "receiver 'b': an inline 'secret' is not allowed"),
        ("timeout: soon", "timeout must be a duration such as 500ms, 30s or 5m"),
        ("max_attempts: 0", "max_attempts must be a whole number from 1 to 100"),
        ("backoff: {initial: 10m", "backoff initial is longer than its max"),
        ("breaker: {failures: many", "failures must be a whole number"),
        ("breaker: {failures: many", "receiver 'b' breaker: unknown keys ['after']"),
        ("no-host", "url must be an http:// or https:// URL with a host"),
        ('tls_verify: "no"', "tls_verify must be true or false"),
        ('- name: a\n    url: "http://[', "receiver 'a' is defined twice"),
        ('url: "http://[::1"', "url is not a valid URL"),
        ('name: "bad name!"', "a receiver needs a 'name' of letters, digits"),
        ("- just a string", "a receiver must be a mapping, got a string"),
    ],
)
def test_receiver_errors_name_file_and_line(tmp_path: Path, marker: str, message: str) -> None:
    found = errors(tmp_path, BAD_RECEIVERS)
    text = textwrap.dedent(BAD_RECEIVERS).lstrip()
    line = text[: text.index(marker)].count("\n") + 1
    where = f"{tmp_path / 'delivery.yaml'}:{line}: "
    assert any(e.startswith(where) and message in e for e in found), found
    joined = "\n".join(found)
    assert "inline-secret-value" not in joined and "pw-in-url" not in joined


@pytest.mark.parametrize(
    ("text", "marker", "message"),
    [
        ("receivers: {a: 1}\n", "receivers:", "'receivers' must be a list, got a mapping"),
        ("route: [a]\n", "route:", "'route' must be a mapping, got a list"),
        ("routes: []\n", "routes:", "the delivery configuration: unknown keys ['routes']"),
        (
            RECEIVERS + "route:\n  receiver: a\n  match: {platform: x}\n",
            "match: {platform",
            "the root route takes every alert: 'match' belongs in its routes",
        ),
        (RECEIVERS + "route:\n  routes: []\n", "route:", "the root route needs a 'receiver'"),
        (RECEIVERS, "receivers:", "receivers are defined but no 'route' sends alerts to them"),
        (RECEIVERS + "route: {receiver: a, routes: x}\n", "route:", "'routes' must be a list"),
        (RECEIVERS + "route: {receiver: a, routes: [x]}\n", "route:", "a route must be a mapping"),
    ],
)
def test_shape_errors_name_file_and_line(
    tmp_path: Path, text: str, marker: str, message: str
) -> None:
    found = errors(tmp_path, text)
    assert any(e.startswith(at(tmp_path, text, marker) + ": ") and message in e for e in found), (
        found
    )


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert errors(tmp_path, "- a\n") == [
        f"{tmp_path / 'delivery.yaml'}:1: the delivery configuration must be a mapping "
        "(receivers:, route:)"
    ]


# --- secrets -------------------------------------------------------------------------

SECRETS = """
receivers:
  - {name: a, url: "https://a.example.org/", secret_env: CASE_SECRET}
  - {name: b, url: "https://b.example.org/", secret_file: missing.key}
  - {name: c, url: "https://c.example.org/", secret_env: SHORT_SECRET}
  - {name: d, url: "https://d.example.org/", secret_file: short.key}
  - {name: e, url: "https://e.example.org/", secret_env: CASE_SECRET, secret_file: x.key}
  - {name: f, url: "https://f.example.org/", secret_env: "not a variable"}
  - {name: g, url: "https://g.example.org/", secret_env: BAD_WHSEC}
  - {name: h, url: "https://h.example.org/", ca_file: missing-ca.pem}
  - {name: i, url: "https://i.example.org/", secret_env: pastedSecretValue0123456789}
route: {receiver: a}
"""
SHORT = "short-secret-15"  # one byte below the floor


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            "CASE_SECRET}",
            "receiver 'a': the environment variable CASE_SECRET (secret_env) is not set",
        ),
        ("missing.key", "receiver 'b': secret_file {dir}/missing.key: file not found"),
        ("SHORT_SECRET", "the secret in the environment variable SHORT_SECRET is shorter than 16"),
        ("short.key", "the secret in the file {dir}/short.key is shorter than 16 bytes"),
        ("x.key", "receiver 'e': set secret_env or secret_file, not both"),
        ("not a variable", "receiver 'f': secret_env must name an environment variable"),
        (
            "BAD_WHSEC",
            "the secret in the environment variable BAD_WHSEC is not base64 after whsec_",
        ),
        ("missing-ca.pem", "receiver 'h': ca_file {dir}/missing-ca.pem is not a readable file"),
        ("pastedSecret", "receiver 'i': secret_env must name an environment variable"),
    ],
)
def test_secret_errors_name_the_variable_or_file_never_the_value(
    tmp_path: Path, marker: str, message: str
) -> None:
    (tmp_path / "short.key").write_text(SHORT + "\n")
    env = {"SHORT_SECRET": SHORT, "BAD_WHSEC": "whsec_" + SECRET}
    found = errors(tmp_path, SECRETS, env)
    where = at(tmp_path, SECRETS, marker) + ": "
    expected = message.format(dir=tmp_path)
    assert any(e.startswith(where) and expected in e for e in found), found
    joined = "\n".join(found)
    assert SHORT not in joined and SECRET not in joined and "pastedSecret" not in joined


def test_without_resolving_only_the_shape_is_checked(tmp_path: Path) -> None:
    found = errors(tmp_path, SECRETS, {}, resolve=False)
    assert len(found) == 3  # both secrets named, two variables that are no variables
    config = load(tmp_path, RECEIVERS + "route: {receiver: a}\n", {}, resolve=False)
    assert config.receivers["a"].secret is None


def test_a_secret_file_behind_a_link_out_of_its_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "real.key").write_text(SECRET)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "keys").mkdir()
    (tmp_path / "conf" / "keys" / "link.key").symlink_to(elsewhere / "real.key")
    path = write(
        tmp_path / "conf",
        """
        receivers: [{name: a, url: "https://a.example.org/", secret_file: keys/link.key}]
        route: {receiver: a}
        """,
    )
    with pytest.raises(ConfigErrors) as err:
        load_delivery(path, [tmp_path / "conf"], {})
    assert "refused: the file (or a link to it) lies outside" in str(err.value)
    assert SECRET not in str(err.value)
