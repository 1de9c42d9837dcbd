"""The service registry (`services.yaml`): whose data a flow carries, by service.

A list of services, each with `name`, a `match` (what tells its flows:
`src_cidrs`, `services`, `workload_labels`; every criterion given must
hold) and what its flows carry: `platform`, `subject_region`,
`data_categories`, `dataset_id`. Strict: unknown keys, malformed values
and entries that match or supply nothing are refused, each with its file
and line. Matching is `monitor.contract.attribution`'s.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Final

from monitor.config.yamlfile import LDict, LList, kind_of, load_yaml, strings_at, token
from monitor.contract.attribution import (
    NO_SERVICES,
    Attributes,
    Network,
    ServiceEntry,
    ServiceRegistry,
)
from monitor.contract.countries import ISO_ALPHA2
from monitor.contract.schemas import LABEL_PATTERN, MAX_TEXT, PLATFORM_PATTERN
from monitor.errors import ConfigError, ConfigErrors

__all__ = ["load_services"]

_ENTRY_KEYS: Final = frozenset(
    {"name", "match", "platform", "subject_region", "data_categories", "dataset_id"}
)
_MATCH_KEYS: Final = frozenset({"src_cidrs", "services", "workload_labels"})


def load_services(path: Path) -> ServiceRegistry:
    """The registry in `path`; an empty file is an empty registry."""
    doc = load_yaml(path, (path.parent,))
    if doc is None:
        return NO_SERVICES
    if not isinstance(doc, LList):
        raise ConfigError("the service registry must be a list of services", doc.loc())
    errors: list[ConfigError] = []
    entries: list[ServiceEntry] = []
    names: dict[str, int] = {}
    for i, item in enumerate(doc):
        if not isinstance(item, LDict):
            errors.append(
                ConfigError(f"a service must be a mapping, got {kind_of(item)}", doc.loc(i))
            )
            continue
        entry = _entry(item, errors)
        if entry is None:
            continue
        if entry.name in names:
            errors.append(
                ConfigError(
                    f"duplicate service name {token(entry.name)} (first at line "
                    f"{names[entry.name]})",
                    item.loc("name"),
                )
            )
        names.setdefault(entry.name, item.loc("name").line)
        entries.append(entry)
    if errors:
        raise ConfigErrors(errors)
    return ServiceRegistry(tuple(entries))


def _entry(item: LDict, errors: list[ConfigError]) -> ServiceEntry | None:
    before = len(errors)
    _refuse_unknown(item, _ENTRY_KEYS, "a service has", errors)
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(ConfigError("a service needs a 'name' (text)", item.loc("name")))
        name = ""
    match = item.get("match")
    cidrs: tuple[Network, ...] = ()
    services: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    if not isinstance(match, LDict):
        errors.append(
            ConfigError(
                f"service {token(name)} needs a 'match' mapping (src_cidrs, services, "
                f"workload_labels), got {kind_of(match)}",
                item.loc("match"),
            )
        )
    else:
        _refuse_unknown(match, _MATCH_KEYS, "'match' takes", errors)
        cidrs = _cidrs(match, errors)
        services = _texts(match, "services", errors)
        labels = _labels(match, errors)
        if not (cidrs or services or labels) and len(errors) == before:
            errors.append(
                ConfigError(
                    f"service {token(name)}: 'match' names no src_cidrs, services or "
                    "workload_labels, so it would match every flow",
                    match.loc(),
                )
            )
    supplies = _supplies(item, errors)
    if supplies == Attributes() and len(errors) == before:
        errors.append(
            ConfigError(
                f"service {token(name)} supplies nothing: give platform, subject_region, "
                "data_categories or dataset_id",
                item.loc(),
            )
        )
    if len(errors) > before:
        return None
    return ServiceEntry(name, supplies, cidrs, frozenset(services), labels)


def _refuse_unknown(
    node: LDict, known: frozenset[str], what: str, errors: list[ConfigError]
) -> None:
    """An error at the first unknown key, naming every unknown one and what is known."""
    unknown = sorted(set(node) - known)
    if unknown:
        errors.append(
            ConfigError(
                f"unknown keys {token(unknown)} ({what} {', '.join(sorted(known))})",
                node.loc(unknown[0]),
            )
        )


def _cidrs(match: LDict, errors: list[ConfigError]) -> tuple[Network, ...]:
    texts = strings_at(match, "src_cidrs", errors) or ()
    out: list[Network] = []
    listed: Any = match.get("src_cidrs")
    for i, text in enumerate(texts):
        try:
            out.append(ipaddress.ip_network(text, strict=True))
        except ValueError as e:
            why = "host bits set" if "host bits" in str(e) else "not an IPv4 or IPv6 network"
            errors.append(
                ConfigError(f"src_cidrs: {token(text)} is {why} (e.g. 10.0.0.0/16)", listed.loc(i))
            )
    return tuple(out)


def _texts(node: LDict, key: str, errors: list[ConfigError]) -> tuple[str, ...]:
    texts = strings_at(node, key, errors) or ()
    listed: Any = node.get(key)
    for i, text in enumerate(texts):
        if not text or len(text) > MAX_TEXT:
            errors.append(ConfigError(f"{key}: an empty or over-long name", listed.loc(i)))
    return texts


def _labels(match: LDict, errors: list[ConfigError]) -> tuple[tuple[str, str], ...]:
    value = match.get("workload_labels")
    if value is None:
        return ()
    if not isinstance(value, LDict):
        errors.append(
            ConfigError(
                f"'workload_labels' must be a mapping of label to value, got {kind_of(value)}",
                match.loc("workload_labels"),
            )
        )
        return ()
    out = []
    for key, label in value.items():
        if not isinstance(label, str) or not label:
            # An unquoted 0123 would be read as a number (octal, even): refused, not guessed.
            errors.append(
                ConfigError(
                    f"workload label {token(key)} must be text (quote numbers), got "
                    f"{kind_of(label)}",
                    value.loc(key),
                )
            )
            continue
        out.append((key, label))
    return tuple(sorted(out))


def _supplies(item: LDict, errors: list[ConfigError]) -> Attributes:
    platform = item.get("platform")
    if platform is not None and (
        not isinstance(platform, str) or PLATFORM_PATTERN.fullmatch(platform) is None
    ):
        errors.append(
            ConfigError(
                f"platform must be a platform name ([a-z0-9][a-z0-9_.-]{{0,63}}), got "
                f"{token(platform)}",
                item.loc("platform"),
            )
        )
        platform = None
    region = item.get("subject_region")
    if region is not None and (not isinstance(region, str) or region not in ISO_ALPHA2):
        errors.append(
            ConfigError(
                f"subject_region must be an ISO 3166-1 alpha-2 code, got {token(region)}",
                item.loc("subject_region"),
            )
        )
        region = None
    categories = strings_at(item, "data_categories", errors) or ()
    listed: Any = item.get("data_categories")
    for i, label in enumerate(categories):
        if LABEL_PATTERN.fullmatch(label) is None:
            errors.append(
                ConfigError(
                    f"data_categories: {token(label)} is not a taxonomy label "
                    "(e.g. user.contact.email)",
                    listed.loc(i),
                )
            )
    dataset = item.get("dataset_id")
    if dataset is not None and (not isinstance(dataset, str) or not 0 < len(dataset) <= MAX_TEXT):
        errors.append(
            ConfigError(f"dataset_id must be text, got {kind_of(dataset)}", item.loc("dataset_id"))
        )
        dataset = None
    return Attributes(platform, region, tuple(dict.fromkeys(categories)), dataset)
