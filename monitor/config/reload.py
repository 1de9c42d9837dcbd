"""Reloading the rules, disclosures, endpoint and service registries and GeoIP database of a
running worker.

What detection reads is one `Loaded`: frozen, built whole, and replaced whole,
so a record is always evaluated against one version of everything and a
reload costs the data path nothing (agents/reload.py swaps the reference
between batches). `Reloader.poll` is the pure part: it looks at the files'
stamps, loads what changed and says what now runs and why a part was refused.

Parts, each reloaded from its files as they are on disk:

- `rules` and `disclosures` together: the pack is compiled with the
  disclosures, and a pack is only ever built from files that were on disk
  together, so when either fails neither is taken;
- `endpoints` and `geoip` on their own: each makes a new resolver;
- `services` on its own: the service registry ingest attributes flows with.

A part that fails to load keeps the version that runs, and is not tried again
until its files change (or a forced reload, SIGHUP, asks).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal

from monitor.alerts.grouping import AlertContext
from monitor.config.disclosures import Disclosures, EndpointRegistry, load_endpoints
from monitor.config.runtime import (
    Runtime,
    key_subjects,
    load_rules,
    load_service_registry,
    open_geoip,
)
from monitor.config.settings import Settings
from monitor.contract.attribution import NO_SERVICES, ServiceEntry, ServiceRegistry
from monitor.engine.loader import rule_files
from monitor.engine.model import RulePack
from monitor.errors import ConfigError, ConfigErrors, XborderError
from monitor.geo.resolve import CountryLookup, Resolver

__all__ = [
    "PARTS",
    "Loaded",
    "Outcome",
    "Part",
    "Reloader",
    "Snapshot",
    "Stamp",
    "digest",
    "reason",
    "snapshot",
    "state_conflicts",
    "watched_files",
]

Part = Literal["rules", "disclosures", "endpoints", "services", "geoip"]
PARTS: Final[tuple[Part, ...]] = ("rules", "disclosures", "endpoints", "services", "geoip")
# Loaded together: the pack is compiled with the disclosures.
_PACK_PARTS: Final[frozenset[Part]] = frozenset({"rules", "disclosures"})
# Errors listed in a reason; the rest are counted.
_REASON_ERRORS: Final = 3

# What identifies a file's version without reading it: device, inode, size and
# modification time. A rename over it (editors, Kubernetes ConfigMaps) moves
# the inode even when size and time agree. None: missing or unreadable.
Stamp = tuple[int, int, int, int] | None
Snapshot = Mapping[Part, Mapping[str, Stamp]]


def digest(value: object) -> str:
    """A short digest of loaded configuration (its meaning, not its bytes: comments don't count)."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:12]


def _disclosures_digest(disclosures: Disclosures) -> str:
    return digest(sorted(disclosures.by_platform.items()))


def _endpoints_digest(endpoints: EndpointRegistry) -> str:
    return digest((sorted(endpoints.hosts.items()), endpoints.suffixes))


def _services_digest(services: ServiceRegistry) -> str:
    # Sets sorted: their order changes from one process to the next.
    return digest([_entry_key(e) for e in services.entries])


def _entry_key(entry: ServiceEntry) -> tuple[object, ...]:
    return (
        entry.name,
        entry.supplies,
        entry.src_cidrs,
        sorted(entry.services),
        entry.workload_labels,
    )


@dataclass(frozen=True)
class Loaded:
    """One consistent version of what detection reads, and the versions it reports."""

    pack: RulePack
    disclosures: Disclosures
    endpoints: EndpointRegistry
    geoip: CountryLookup | None
    services: ServiceRegistry = NO_SERVICES
    resolver: Resolver = field(init=False)
    alert_context: AlertContext = field(init=False)
    versions: Mapping[Part, str] = field(init=False)

    def __post_init__(self) -> None:
        resolver = Resolver(self.geoip, self.endpoints)
        object.__setattr__(self, "resolver", resolver)
        object.__setattr__(
            self, "alert_context", AlertContext(self.pack.version, resolver.geoip_build)
        )
        versions: dict[Part, str] = {
            "rules": self.pack.version,
            "disclosures": _disclosures_digest(self.disclosures),
            "endpoints": _endpoints_digest(self.endpoints),
            "services": _services_digest(self.services),
            "geoip": resolver.geoip_build or "",
        }
        object.__setattr__(self, "versions", versions)

    @classmethod
    def of(cls, runtime: Runtime) -> Loaded:
        return cls(
            runtime.pack, runtime.disclosures, runtime.endpoints, runtime.geoip, runtime.services
        )


def watched_files(settings: Settings) -> dict[Part, tuple[Path, ...]]:
    """The files each part is read from (the rule files as the folder lists them now)."""
    rules = settings.rules_dir
    files: dict[Part, tuple[Path, ...]] = {
        "rules": (rules / "pack.yaml", *rule_files(rules)) if rules.is_dir() else (rules,),
        "disclosures": (settings.disclosures_path,),
        "endpoints": (settings.endpoints_path,),
        "services": (settings.services_path,),
    }
    if settings.use_geoip:
        asn = settings.geoip_asn_path
        files["geoip"] = (settings.geoip_country_path, *((asn,) if asn is not None else ()))
    return files


def _stamp(path: Path) -> Stamp:
    try:
        st = os.stat(path)  # follows links: a ConfigMap's files are links into its data
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def snapshot(files: Mapping[Part, Iterable[Path]]) -> dict[Part, dict[str, Stamp]]:
    """Every watched file's stamp, by part."""
    return {part: {str(p): _stamp(p) for p in paths} for part, paths in files.items()}


def reason(error: BaseException) -> str:
    """Why a part was refused, for the log: file:line and what is wrong, never file contents.

    The monitor's own errors are written to name a place and at most a short
    token; anything else is named by its type alone, as its text may quote input.
    """
    if isinstance(error, ConfigErrors):
        shown = "; ".join(str(e) for e in error.errors[:_REASON_ERRORS])
        more = len(error.errors) - _REASON_ERRORS
        return f"{shown}; and {more} more" if more > 0 else shown
    if isinstance(error, XborderError):
        return str(error)
    return f"{type(error).__name__} while loading (a bug of the monitor)"


def state_conflicts(running: RulePack, new: RulePack) -> list[ConfigError]:
    """Rules whose state, kept under their id, the new pack's types could not read.

    A stateful rule that changes type keeps its id, so the state of the old
    type would reach the new one: refused, with the rule's place.
    """
    errors = []
    for rule in new.stateful:
        old = running.by_id.get(rule.id)
        if old is None or old.type is None or rule.type is None:
            continue
        if old.type.name != rule.type.name:
            errors.append(
                ConfigError(
                    f"rule {rule.id} changes type from {old.type.name} to {rule.type.name} "
                    "while the worker runs: the state kept under its id would not fit the new "
                    "type; give the rule a new id",
                    rule.location,
                )
            )
    return errors


@dataclass(frozen=True)
class Outcome:
    """What a reload did: what now runs, and each part tried with None (taken) or why not."""

    loaded: Loaded
    results: Mapping[Part, str | None]
    # The version that ran before, when another replaces it (its GeoIP database to close).
    replaced: Loaded | None = None


@dataclass
class Loaders:
    """How parts are loaded (tests replace them to count or fail loads)."""

    rules: Callable[[Settings], tuple[RulePack, Disclosures]] = load_rules
    endpoints: Callable[[Path], EndpointRegistry] = load_endpoints
    services: Callable[[Settings], ServiceRegistry] = load_service_registry
    geoip: Callable[[Settings], CountryLookup | None] = open_geoip


class Reloader:
    """Decides when to reload and loads; keeps the last good version of each part.

    A change is acted on once the files have looked the same on two polls in
    a row: a file written in place is not read half-written (write files
    whole and rename them into place all the same: a slow writer can still
    pause longer than a poll). A forced poll reloads every part at once.
    """

    def __init__(
        self,
        settings: Settings,
        running: Loaded,
        subject_key: bytes,
        stamps: Snapshot | None = None,
        loaders: Loaders | None = None,
    ) -> None:
        self.settings = settings
        self.running = running
        self.subject_key = subject_key
        self.loaders = loaders or Loaders()
        # The stamps of the files the running version was loaded from (taken
        # before loading: a change during the load is seen again, not missed).
        tried = stamps if stamps is not None else self.look()
        self._tried: dict[Part, Mapping[str, Stamp]] = dict(tried)
        self._last: Snapshot = tried

    @property
    def parts(self) -> tuple[Part, ...]:
        return PARTS if self.settings.use_geoip else tuple(p for p in PARTS if p != "geoip")

    def look(self) -> dict[Part, dict[str, Stamp]]:
        return snapshot(watched_files(self.settings))

    def poll(self, force: bool = False) -> Outcome | None:
        """Reload the parts whose files changed and settled (every part when forced)."""
        now = self.look()
        settled = now == self._last
        self._last = now
        if force:
            parts = set(self.parts)
        elif not settled:
            return None
        else:
            parts = {p for p in self.parts if now.get(p) != self._tried.get(p)}
            if not parts:
                return None
        for part in parts:
            self._tried[part] = now[part]
        return self.reload(parts)

    def reload(self, parts: Iterable[Part]) -> Outcome:
        """Load the parts from their files; what runs then, and each part's result."""
        parts = set(parts)
        running = self.running
        new = running
        results: dict[Part, str | None] = {}
        if parts & _PACK_PARTS:
            tried = sorted(parts & _PACK_PARTS)
            try:
                pack, disclosures = self.loaders.rules(self.settings)
                conflicts = state_conflicts(running.pack, pack)
                if conflicts:
                    raise ConfigErrors(conflicts)
            except Exception as e:  # the part is refused; its reason is logged
                results.update(dict.fromkeys(tried, reason(e)))
            else:
                key_subjects(pack, self.subject_key)
                new = replace(new, pack=pack, disclosures=disclosures)
                results.update(dict.fromkeys(tried))
        # The parts loaded on their own: each the running version with it loaded anew.
        settings, loaders = self.settings, self.loaders
        alone: tuple[tuple[Part, Callable[[Loaded], Loaded]], ...] = (
            (
                "endpoints",
                lambda v: replace(v, endpoints=loaders.endpoints(settings.endpoints_path)),
            ),
            ("services", lambda v: replace(v, services=loaders.services(settings))),
            ("geoip", lambda v: replace(v, geoip=loaders.geoip(settings))),
        )
        for part, load in alone:
            if part not in parts:
                continue
            try:
                new = load(new)
                results[part] = None
            except Exception as e:  # refused, as above
                results[part] = reason(e)
        if new is running:
            return Outcome(running, results)
        self.running = new
        return Outcome(new, results, replaced=running)
