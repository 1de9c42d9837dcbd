"""The service registry: its loader's refusals (file:line) and how flows are matched."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor.config.runtime import load_service_registry
from monitor.config.services import load_services
from monitor.config.settings import Settings
from monitor.contract.attribution import Attributes, ServiceRegistry
from monitor.errors import ConfigError, ConfigErrors

REGISTRY = """\
- name: temu-orders
  match:
    workload_labels: {account-id: "123456789010", vpc-id: vpc-1}
  platform: temu
  subject_region: KR
  data_categories: [user.contact.email, user.name]
  dataset_id: temu-kr-orders
- name: shein-payments-v6
  match:
    src_cidrs: ["2001:db8:5::/48"]
  platform: shein
  data_categories: [user.payment]
- name: checkout-in-net
  match:
    src_cidrs: [10.20.0.0/16]
    services: [checkout]
  platform: aliexpress
  subject_region: KR
  data_categories: [user.payment]
- name: any-in-net
  match:
    src_cidrs: [10.0.0.0/8, 192.0.2.0/24]
  platform: aliexpress
  subject_region: JP
- name: by-service
  match:
    services: [crm-sync, crm-export]
  subject_region: KR
  data_categories: [user.contact]
"""


def registry(tmp_path: Path, text: str = REGISTRY) -> ServiceRegistry:
    path = tmp_path / "services.yaml"
    path.write_text(text)
    return load_services(path)


def named(reg: ServiceRegistry, found: Attributes | None) -> str | None:
    return next((e.name for e in reg.entries if e.supplies is found), None)


# --- matching ------------------------------------------------------------------------


def test_cidr_v4_first_matching_entry_in_file_order_wins(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    # In 10.20/16 with the service: the earlier, narrower entry.
    assert named(reg, reg.attribute("10.20.3.4", "checkout", {})) == "checkout-in-net"
    # In 10.20/16 without it: that entry's criteria do not all hold; the next one matches.
    assert named(reg, reg.attribute("10.20.3.4", "search", {})) == "any-in-net"
    assert named(reg, reg.attribute("10.99.0.1", None, {})) == "any-in-net"
    assert named(reg, reg.attribute("192.0.2.255", None, {})) == "any-in-net"
    assert reg.attribute("11.0.0.1", None, {}) is None
    assert reg.attribute("192.0.3.0", None, {}) is None


def test_cidr_v6_and_addresses_that_are_no_address(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    assert named(reg, reg.attribute("2001:db8:5:ffff::1", None, {})) == "shein-payments-v6"
    assert reg.attribute("2001:db8:6::1", None, {}) is None
    # An IPv4 address of the same bits as a v6 network is not in it.
    assert reg.attribute("32.1.13.184", None, {}) is None
    assert reg.attribute("not an address", None, {}) is None
    assert reg.attribute(None, None, {}) is None


def test_service_names(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    found = reg.attribute(None, "crm-export", {})
    assert found == Attributes(None, "KR", ("user.contact",), None)
    assert reg.attribute(None, "crm", {}) is None


def test_workload_labels_every_pair_must_equal(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    both = {"account-id": "123456789010", "vpc-id": "vpc-1", "interface-id": "eni-9"}
    found = reg.attribute("203.0.113.9", None, both)
    assert found == Attributes("temu", "KR", ("user.contact.email", "user.name"), "temu-kr-orders")
    assert reg.attribute("203.0.113.9", None, {"account-id": "123456789010"}) is None
    assert reg.attribute(None, None, {**both, "vpc-id": "vpc-2"}) is None


def test_an_entry_naming_another_platform_does_not_apply(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    # A telemetry-v1 record of shein from 10.20.0.0/16: the aliexpress entries are not its.
    assert reg.attribute("10.20.3.4", "checkout", {}, platform="shein") is None
    assert named(reg, reg.attribute("10.20.3.4", "crm-sync", {}, "shein")) == "by-service"
    assert named(reg, reg.attribute("10.20.3.4", "checkout", {}, "aliexpress")) == (
        "checkout-in-net"
    )


def test_cached_answers_are_per_source_service_platform_and_labels(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    labels = {"account-id": "123456789010", "vpc-id": "vpc-1"}
    for _ in range(3):
        assert reg.attribute("10.1.1.1", None, labels).platform == "temu"  # type: ignore[union-attr]
        assert reg.attribute("10.1.1.1", None, {}).subject_region == "JP"  # type: ignore[union-attr]
        assert reg.attribute("10.1.1.1", None, labels, "shein") is None


def test_matching_a_thousand_networks_is_cheap(tmp_path: Path) -> None:
    lines = [
        f"- name: s{i}\n  match: {{src_cidrs: [10.{i // 256}.{i % 256}.0/24]}}\n  platform: p{i}\n"
        for i in range(1000)
    ]
    reg = registry(tmp_path, "".join(lines))
    assert reg.attribute("10.3.231.7", None, {}).platform == "p999"  # type: ignore[union-attr]
    started = time.perf_counter()
    for i in range(20_000):
        reg.attribute(f"10.{i % 4}.{i % 256}.{i % 200}", None, {})
    # 20,000 lookups of mostly distinct sources: about 0.2 s here; a scan of every
    # network with ipaddress would take tens of seconds.
    assert time.perf_counter() - started < 5


# --- loading -------------------------------------------------------------------------


def test_the_bundled_registry_is_empty_and_its_commented_examples_load(tmp_path: Path) -> None:
    settings = Settings()
    assert not load_service_registry(settings)
    text = settings.services_path.read_text()
    examples = text[text.index("# - name:") :].replace("# ", "").replace("#", "")
    reg = registry(tmp_path, examples)
    assert [e.name for e in reg.entries] == [
        "example-temu-kr-orders",
        "example-shein-kr-payments",
    ]
    found = reg.attribute("192.0.2.1", None, {"account-id": "111122223333"})
    assert found is not None and found.platform == "temu"
    assert reg.attribute("198.51.100.9", "example-payments", {}) == Attributes(
        "shein", "KR", ("user.payment",)
    )


def test_no_default_file_is_an_empty_registry_but_a_named_one_must_exist(tmp_path: Path) -> None:
    assert not load_service_registry(Settings(rules_dir=tmp_path))
    with pytest.raises(ConfigError, match="file not found"):
        load_service_registry(Settings(services=tmp_path / "missing.yaml"))
    assert not registry(tmp_path, "# nothing yet\n")


BAD = [
    ("not_a_list", "name: x\n", 1, "must be a list of services"),
    ("entry_not_mapping", "- [a, b]\n", 1, "a service must be a mapping"),
    (
        "unknown_key",
        "- name: x\n  match: {services: [a]}\n  platform: p\n  region: KR\n",
        4,
        "unknown keys ['region']",
    ),
    (
        "unknown_match_key",
        "- name: x\n  match:\n    services: [a]\n    src_cidr: [10.0.0.0/8]\n  platform: p\n",
        4,
        "unknown keys ['src_cidr']",
    ),
    (
        "bad_cidr",
        "- name: x\n  match:\n    src_cidrs:\n      - 10.0.0.0/8\n      - 10.300.0.0/16\n  platform: p\n",
        5,
        "not an IPv4 or IPv6 network",
    ),
    (
        "host_bits",
        "- name: x\n  match: {src_cidrs: [10.0.0.5/8]}\n  platform: p\n",
        2,
        "host bits set",
    ),
    (
        "bad_country",
        "- name: x\n  match: {services: [a]}\n  subject_region: Korea\n",
        3,
        "ISO 3166-1 alpha-2",
    ),
    (
        "lower_country",
        "- name: x\n  match: {services: [a]}\n  subject_region: kr\n",
        3,
        "ISO 3166-1 alpha-2",
    ),
    (
        "bad_label",
        "- name: x\n  match: {services: [a]}\n  data_categories:\n    - user.contact\n    - user contact\n",
        5,
        "not a taxonomy label",
    ),
    (
        "bad_platform",
        "- name: x\n  match: {services: [a]}\n  platform: Temu Inc\n",
        3,
        "platform name",
    ),
    ("empty_match", "- name: x\n  match: {}\n  platform: p\n", 2, "would match every flow"),
    (
        "empty_lists",
        "- name: x\n  match: {src_cidrs: [], services: []}\n  platform: p\n",
        2,
        "would match every flow",
    ),
    ("no_match", "- name: x\n  platform: p\n", 1, "needs a 'match' mapping"),
    ("no_name", "- match: {services: [a]}\n  platform: p\n", 1, "needs a 'name'"),
    ("supplies_nothing", "- name: x\n  match: {services: [a]}\n", 1, "supplies nothing"),
    (
        "number_label",
        "- name: x\n  match:\n    workload_labels:\n      account-id: 0123\n  platform: p\n",
        4,
        "must be text (quote numbers)",
    ),
    (
        "labels_list",
        "- name: x\n  match:\n    workload_labels: [a]\n  platform: p\n",
        3,
        "mapping of label to value",
    ),
    (
        "duplicate_name",
        "- name: x\n  match: {services: [a]}\n  platform: p\n- name: x\n  match: {services: [b]}\n  platform: q\n",
        4,
        "duplicate service name 'x' (first at line 1)",
    ),
    (
        "dataset_number",
        "- name: x\n  match: {services: [a]}\n  dataset_id: [a]\n",
        3,
        "dataset_id must be text",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_malformed_registries_are_refused_with_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(text)
    with pytest.raises((ConfigError, ConfigErrors)) as caught:
        load_services(path)
    error = caught.value
    shown = [str(e) for e in error.errors] if isinstance(error, ConfigErrors) else [str(error)]
    assert any(s.startswith(f"{path}:{line}:") and message in s for s in shown), shown


def test_every_mistake_is_named_in_one_run(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(
        "- name: a\n  match: {src_cidrs: [nope]}\n  platform: p\n"
        "- name: b\n  match: {services: [a]}\n  subject_region: XX\n"
    )
    with pytest.raises(ConfigErrors) as caught:
        load_services(path)
    assert [e.location.line for e in caught.value.errors] == [2, 6]  # type: ignore[union-attr]
