"""The configuration the rules read: platforms' disclosures and the endpoint registry."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from monitor.config.yamlfile import LDict, LList, is_scalar, kind_of, load_yaml, strings_at, token
from monitor.contract.countries import ISO_ALPHA2
from monitor.errors import ConfigError, ConfigErrors, Location

__all__ = [
    "Certification",
    "Disclosure",
    "Disclosures",
    "EndpointRegistry",
    "host_of",
    "load_disclosures",
    "load_endpoints",
]


@dataclass(frozen=True, slots=True)
class Certification:
    """A recipient's certification (PIPA Art. 28-8(1)(4)): its id and last valid day."""

    id: str
    valid_until: date

    @property
    def ends_ms(self) -> int:
        """The instant it lapses: the end of its last day in UTC, the monitor's own clock."""
        end = datetime.combine(self.valid_until + timedelta(days=1), time(), tzinfo=UTC)
        return int(end.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One declared overseas transfer (PIPA Art. 28-8(2) items)."""

    country: str
    recipient: str | None = None
    items: tuple[str, ...] = ()
    purpose: str | None = None
    retention: str | None = None
    certification: Certification | None = None


@dataclass(frozen=True)
class Disclosures:
    """Per platform, the declared transfers. A platform missing here declared none."""

    by_platform: Mapping[str, tuple[Disclosure, ...]]

    def __post_init__(self) -> None:
        countries = {p: frozenset(d.country for d in ds) for p, ds in self.by_platform.items()}
        object.__setattr__(self, "_countries", countries)
        items: dict[tuple[str, str], tuple[str, ...] | None] = {}
        for platform, entries in self.by_platform.items():
            for d in entries:
                key = (platform, d.country)
                # An entry that lists no items declares nothing to compare
                # with: that country's items go unchecked rather than all
                # reported.
                before = items.get(key, ())
                items[key] = None if before is None or not d.items else (*before, *d.items)
        object.__setattr__(self, "_items", items)
        recipients: dict[tuple[str, str], frozenset[str] | None] = {}
        for platform, entries in self.by_platform.items():
            for d in entries:
                key = (platform, d.country)
                # As with items: an entry naming no recipient leaves it unchecked.
                had = recipients.get(key, frozenset())
                recipients[key] = (
                    None if had is None or d.recipient is None else had | {_name(d.recipient)}
                )
        object.__setattr__(self, "_recipients", recipients)
        # Records usually spell a recipient as disclosed: that test needs no
        # normalising, which costs more than the rest of the check.
        exact = {
            (platform, d.country, d.recipient)
            for platform, entries in self.by_platform.items()
            for d in entries
            if d.recipient is not None
        }
        object.__setattr__(self, "_exact_recipients", exact)
        certified: dict[tuple[str, str], list[tuple[str | None, int]]] = {}
        for platform, entries in self.by_platform.items():
            for d in entries:
                if d.certification is not None:
                    name = None if d.recipient is None else _name(d.recipient)
                    key = (platform, d.country)
                    certified.setdefault(key, []).append((name, d.certification.ends_ms))
        object.__setattr__(self, "_certified", certified)
        # Records repeat a few label sets per platform and country: the
        # verdict is kept, so the data path pays one lookup per record.
        object.__setattr__(self, "_covered", {})

    def countries(self, platform: str) -> frozenset[str]:
        found: dict[str, frozenset[str]] = self._countries  # type: ignore[attr-defined]
        return found.get(platform, frozenset())

    def items(self, platform: str, country: str | None) -> tuple[str, ...] | None:
        """Items disclosed for a destination (empty if undisclosed; None if listed without any)."""
        found: dict[tuple[str, str], tuple[str, ...] | None] = self._items  # type: ignore[attr-defined]
        return found.get((platform, country or ""), ())

    def recipient_disclosed(
        self, platform: str, country: str | None, recipient: str | None
    ) -> bool:
        """Whether a named recipient is one the platform disclosed for that country.

        A record naming none, or a country disclosed without a recipient, is
        not checked (true); an undisclosed country discloses no one (false).
        """
        exact: set[tuple[str, str | None, str]] = self._exact_recipients  # type: ignore[attr-defined]
        if recipient is None or (platform, country, recipient) in exact:
            return True
        found: dict[tuple[str, str], frozenset[str] | None]
        found = self._recipients  # type: ignore[attr-defined]
        names = found.get((platform, country or ""), frozenset())
        return names is None or _name(recipient) in names

    def certified(self, platform: str, country: str | None, recipient: str | None, ts: int) -> bool:
        """Whether a certification disclosed for that country was in force at `ts`.

        When the record names its recipient, only that recipient's
        certification counts (the certification is the recipient's own).
        """
        found: dict[tuple[str, str], list[tuple[str | None, int]]]
        found = self._certified  # type: ignore[attr-defined]
        name = None if recipient is None else _name(recipient)
        return any(
            ts < ends and (name is None or holder is None or holder == name)
            for holder, ends in found.get((platform, country or ""), ())
        )

    def items_disclosed(self, platform: str, country: str | None, labels: tuple[str, ...]) -> bool:
        """Whether every personal label (`user`, `user.*`) is under an item disclosed for it.

        Hierarchical, as rules match: a disclosed `user.contact` covers
        `user.contact.email`; a coarser `user` label is covered by `user` only.
        """
        key = (platform, country, labels)
        covered: dict[tuple[str, str | None, tuple[str, ...]], bool]
        covered = self._covered  # type: ignore[attr-defined]
        verdict = covered.get(key)
        if verdict is None:
            verdict = _covers(self.items(platform, country), labels)
            if len(covered) >= _MAX_VERDICTS:
                covered.clear()
            covered[key] = verdict
        return verdict


def _name(recipient: str) -> str:
    """A recipient as compared: case and runs of spaces do not make another organisation."""
    return " ".join(recipient.casefold().split())


# Verdicts kept per Disclosures; records come with few distinct label sets,
# and a stream of made-up ones must not grow memory without end.
_MAX_VERDICTS = 4096


def _covers(items: tuple[str, ...] | None, labels: tuple[str, ...]) -> bool:
    if items is None:
        return True
    for label in labels:
        if label != "user" and not label.startswith("user."):
            continue
        if not any(label == i or label.startswith(i + ".") for i in items):
            return False
    return True


def _allowed_roots(path: Path) -> tuple[Path]:
    # The folder the file is configured in: a link from there to elsewhere (a
    # secret, a device) is refused.
    return (path.parent,)


def _country(value: object, loc: Location, errors: list[ConfigError]) -> str:
    if not isinstance(value, str) or value not in ISO_ALPHA2:
        errors.append(
            ConfigError(f"country must be an ISO 3166-1 alpha-2 code, got {token(value)}", loc)
        )
        return ""
    return value


def load_disclosures(path: Path) -> Disclosures:
    doc = load_yaml(path, _allowed_roots(path))
    if doc is None:
        return Disclosures({})
    if not isinstance(doc, LDict):
        raise ConfigError("disclosures must be a mapping of platform to a list", doc.loc())
    errors: list[ConfigError] = []
    out: dict[str, tuple[Disclosure, ...]] = {}
    for platform, entries in doc.items():
        if entries is None:
            out[platform] = ()
            continue
        if not isinstance(entries, LList):
            errors.append(
                ConfigError(
                    f"{token(platform)}: expected a list, got {kind_of(entries)}", doc.loc(platform)
                )
            )
            continue
        items: list[Disclosure] = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, LDict) or "country" not in entry:
                errors.append(
                    ConfigError(f"{token(platform)}: entry needs 'country'", entries.loc(i))
                )
                continue
            unknown = set(entry) - {
                "country", "recipient", "items", "purpose", "retention", "certification"
            }  # fmt: skip
            if unknown:
                errors.append(ConfigError(f"unknown keys {token(sorted(unknown))}", entry.loc()))
            country = _country(entry["country"], entry.loc("country"), errors)
            items.append(
                Disclosure(
                    country=country,
                    recipient=_opt_str(entry, "recipient", errors),
                    items=strings_at(entry, "items", errors) or (),
                    purpose=_opt_str(entry, "purpose", errors),
                    retention=_opt_str(entry, "retention", errors),
                    certification=_certification(entry, errors),
                )
            )
        out[platform] = tuple(items)
    if errors:
        raise ConfigErrors(errors)
    return Disclosures(out)


def _certification(entry: LDict, errors: list[ConfigError]) -> Certification | None:
    """`certification: {id: TEXT, valid_until: YYYY-MM-DD}`, or absent."""
    value = entry.get("certification")
    if value is None:
        return None
    loc = entry.loc("certification")
    if not isinstance(value, LDict) or set(value) != {"id", "valid_until"}:
        errors.append(ConfigError("'certification' needs exactly 'id' and 'valid_until'", loc))
        return None
    cert_id, until = value["id"], value["valid_until"]
    if isinstance(until, str):
        # A quoted date; text that is no date is reported below.
        with contextlib.suppress(ValueError):
            until = date.fromisoformat(until)
    # YAML reads an unquoted 2027-06-30 as a date; a datetime is a date too, but
    # a moment is not what a certificate's last day says.
    if not isinstance(until, date) or isinstance(until, datetime):
        errors.append(
            ConfigError(f"valid_until must be a date YYYY-MM-DD, got {token(until)}", loc)
        )
        return None
    if not isinstance(cert_id, str) or not cert_id:
        errors.append(ConfigError("certification 'id' must be text", loc))
        return None
    return Certification(cert_id, until)


def _opt_str(entry: LDict, key: str, errors: list[ConfigError]) -> str | None:
    """A free-text field: a string (or a number, as `retention: 5`), or absent."""
    value = entry.get(key)
    if not is_scalar(value):
        errors.append(ConfigError(f"'{key}' must be text, got {kind_of(value)}", entry.loc(key)))
        return None
    return None if value is None else str(value)


@dataclass(frozen=True)
class EndpointRegistry:
    """Host or host-suffix to country; an exact host wins, then the longest suffix."""

    hosts: Mapping[str, str]
    suffixes: tuple[tuple[str, str], ...]  # longest first

    def country(self, host: str | None) -> str | None:
        if not host:
            return None
        host = host.lower().rstrip(".")
        exact = self.hosts.get(host)
        if exact is not None:
            return exact
        for suffix, country in self.suffixes:
            if host.endswith(suffix):
                return country
        return None


def load_endpoints(path: Path) -> EndpointRegistry:
    doc = load_yaml(path, _allowed_roots(path))
    if doc is None:
        return EndpointRegistry({}, ())
    if not isinstance(doc, LList):
        raise ConfigError("endpoint registry must be a list", doc.loc())
    errors: list[ConfigError] = []
    hosts: dict[str, str] = {}
    suffixes: dict[str, str] = {}
    for i, entry in enumerate(doc):
        loc = doc.loc(i)
        if not isinstance(entry, LDict):
            errors.append(ConfigError("entry must be a mapping", loc))
            continue
        keys = set(entry)
        if keys not in ({"host", "country"}, {"suffix", "country"}):
            errors.append(ConfigError("entry needs 'country' and one of 'host' or 'suffix'", loc))
            continue
        country = _country(entry["country"], entry.loc("country"), errors)
        kind = "host" if "host" in entry else "suffix"
        name = entry[kind]
        if not isinstance(name, str) or not name.strip("."):
            errors.append(ConfigError(f"{kind} must be a non-empty string", entry.loc(kind)))
            continue
        target = hosts if kind == "host" else suffixes
        key = name.lower().rstrip(".")
        if key in target:
            errors.append(ConfigError(f"duplicate {kind} {token(name)}", entry.loc(kind)))
        target[key] = country
    if errors:
        raise ConfigErrors(errors)
    ordered = tuple(sorted(suffixes.items(), key=lambda kv: -len(kv[0])))
    return EndpointRegistry(hosts, ordered)


def host_of(endpoint: str | None) -> str | None:
    """The host name of a URL or of a bare `host[:port][/path]`."""
    if not endpoint:
        return None
    rest = endpoint.split("://", 1)[1] if "://" in endpoint else endpoint
    rest = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    rest = rest.rsplit("@", 1)[-1]
    if rest.startswith("["):  # IPv6 literal
        return rest[1:].split("]", 1)[0].lower() or None
    if rest.count(":") == 1:
        rest = rest.split(":", 1)[0]
    return rest.lower().rstrip(".") or None
