"""Flow attribution: whose data a flow carries, from the service registry.

Flows (VPC flow logs, Zeek, OCSF, and telemetry-v1 records their producer
did not tag) do not say which platform sent them, where their data
subjects live, what data they carry or which data set. The service
registry (`rules/config/services.yaml`, loaded by
`monitor.config.services`) says it per service, found by the flow's
source address, its service name or its workload labels.

Decisions:
- the first matching entry in file order wins, whole: one flow, one
  service. A field that entry leaves out is not taken from a later entry
  (it falls to the run-wide flags, for the formats that have them);
- within an entry, every criterion given must hold (source inside one of
  `src_cidrs`, service one of `services`, every pair of `workload_labels`
  equal); an entry without criteria is refused by the loader;
- a record's own field always wins: attribution only fills what is absent;
- a telemetry-v1 record names its platform: an entry naming another
  platform does not apply to it (private address ranges repeat across
  platforms; one platform's services must not tag another's flows).

Lookups are cheap: networks are grouped by prefix length as integer masks
(one dict lookup per prefix length in use), and answers are kept per
(source, service, labels the registry reads), bounded.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from monitor.contract.schemas import ApiCall, Egress, KafkaSource, Record

__all__ = [
    "NO_SERVICES",
    "Attributes",
    "ServiceEntry",
    "ServiceRegistry",
    "attribute_records",
    "labels_of",
    "message_labels",
]

# Answers kept per registry; flows repeat few sources, a stream of made-up
# ones must not grow memory without end.
_MAX_CACHED: Final = 65_536

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Attributes:
    """What the registry supplies for a flow; None (or empty) where it says nothing."""

    platform: str | None = None
    subject_region: str | None = None
    data_categories: tuple[str, ...] = ()
    dataset_id: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """One service of the registry: how to know its flows, and what they carry."""

    name: str
    supplies: Attributes
    src_cidrs: tuple[Network, ...] = ()
    services: frozenset[str] = frozenset()
    workload_labels: tuple[tuple[str, str], ...] = ()


_Key = tuple[str | None, str | None, str | None, tuple[str | None, ...]]


@dataclass(frozen=True)
class ServiceRegistry:
    """The registry's entries, in file order, with the indexes that make matching cheap."""

    entries: tuple[ServiceEntry, ...] = ()
    _by_net: dict[tuple[int, int], dict[int, tuple[int, ...]]] = field(
        init=False, repr=False, compare=False
    )
    _label_keys: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _netless: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _cache: dict[_Key, Attributes | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # (IP version, prefix length) -> network as an int -> entries holding it.
        by_net: dict[tuple[int, int], dict[int, list[int]]] = {}
        for i, entry in enumerate(self.entries):
            for net in entry.src_cidrs:
                at = by_net.setdefault((net.version, net.prefixlen), {})
                at.setdefault(int(net.network_address), []).append(i)
        frozen = {k: {n: tuple(v) for n, v in nets.items()} for k, nets in by_net.items()}
        object.__setattr__(self, "_by_net", frozen)
        keys = sorted({k for entry in self.entries for k, _ in entry.workload_labels})
        object.__setattr__(self, "_label_keys", tuple(keys))
        # Entries that match on no network: candidates for every flow.
        netless = tuple(i for i, entry in enumerate(self.entries) if not entry.src_cidrs)
        object.__setattr__(self, "_netless", netless)
        object.__setattr__(self, "_cache", {})

    def __bool__(self) -> bool:
        return bool(self.entries)

    @property
    def label_keys(self) -> tuple[str, ...]:
        """The label names some entry matches on (none: labels need not be read)."""
        return self._label_keys

    def _holding(self, src_ip: str | None) -> frozenset[int]:
        """Entries one of whose networks holds `src_ip`."""
        if not src_ip or not self._by_net:
            return frozenset()
        try:
            address = ipaddress.ip_address(src_ip)
        except ValueError:
            return frozenset()
        value, bits = int(address), address.max_prefixlen
        found: set[int] = set()
        for (version, prefix), nets in self._by_net.items():
            if version == address.version:
                mask = ((1 << prefix) - 1) << (bits - prefix)
                found.update(nets.get(value & mask, ()))
        return frozenset(found)

    def attribute(
        self,
        src_ip: str | None,
        service: str | None,
        labels: Mapping[str, str],
        platform: str | None = None,
    ) -> Attributes | None:
        """What the first matching entry supplies; None when none matches.

        `platform`: the record's own; entries naming another do not apply.
        """
        if not self.entries:
            return None
        key: _Key = (src_ip, service, platform, tuple(labels.get(k) for k in self._label_keys))
        cache = self._cache
        if key in cache:
            return cache[key]
        holding = self._holding(src_ip)
        # In file order: the entries whose networks hold the source, and those with none.
        candidates = sorted(holding.union(self._netless)) if holding else self._netless
        found = None
        for i in candidates:
            entry = self.entries[i]
            wanted = entry.supplies.platform
            if platform is not None and wanted is not None and wanted != platform:
                continue
            if entry.services and service not in entry.services:
                continue
            if any(labels.get(k) != v for k, v in entry.workload_labels):
                continue
            found = entry.supplies
            break
        if len(cache) >= _MAX_CACHED:
            cache.clear()
        cache[key] = found
        return found


NO_SERVICES: Final = ServiceRegistry()


class _Labelled(msgspec.Struct, gc=False):
    """The one extra field of a telemetry-v1 record attribution reads."""

    labels: dict[str, Any] | None = None


_LABELS: Final = msgspec.json.Decoder(_Labelled)
_LABELS_MANY: Final = msgspec.json.Decoder(list[msgspec.Raw])
_NO_LABELS: Final[Mapping[str, str]] = {}


def labels_of(raw: bytes) -> Mapping[str, str]:
    """A telemetry-v1 record's own `labels` (text values only), from its text.

    `labels` is an extra field the contract ignores: a record whose labels
    are malformed is still valid, and simply has none.
    """
    try:
        labels = _LABELS.decode(raw).labels
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return _NO_LABELS
    if not labels:
        return _NO_LABELS
    return {k: v for k, v in labels.items() if isinstance(v, str)}


def _needs(record: Record) -> bool:
    return type(record) in (Egress, ApiCall) and (
        record.subject_region is None or not record.data_categories or record.dataset_id is None
    )


def attribute_records(
    records: Sequence[Record],
    registry: ServiceRegistry,
    labels: Callable[[int], Mapping[str, str]],
) -> list[Record]:
    """Telemetry-v1 records with what they lack filled from the registry.

    Only `subject_region`, `data_categories` and `dataset_id` (a record
    names its platform, which picks the entries that apply), each only when
    absent. `labels(i)`: the i-th record's own labels, asked only when the
    registry matches on labels and the record lacks something. Records
    needing nothing are returned as they are; a filled one is a copy.
    """
    out = list(records)
    if not registry:
        return out
    read_labels = bool(registry.label_keys)
    for i, record in enumerate(records):
        if not _needs(record):
            continue
        own = labels(i) if read_labels else _NO_LABELS
        found = registry.attribute(record.src_ip, record.service, own, record.platform)
        if found is None:
            continue
        changes: dict[str, Any] = {}
        if record.subject_region is None and found.subject_region is not None:
            changes["subject_region"] = found.subject_region
        if not record.data_categories and found.data_categories:
            changes["data_categories"] = found.data_categories
        if record.dataset_id is None and found.dataset_id is not None:
            changes["dataset_id"] = found.dataset_id
        if changes:
            out[i] = msgspec.structs.replace(record, **changes)
    return out


def message_labels(
    messages: Sequence[tuple[bytes | None, KafkaSource]],
) -> Callable[[KafkaSource], Mapping[str, str]]:
    """The labels of a record decoded from these Kafka messages, found by its source.

    A record of a many-record message is found by `index`, as the decoder
    counts: the item of a JSON array, else the non-blank line of JSON Lines.
    Messages are read again only for records that need it.
    """
    values: dict[tuple[str, int, int], bytes] = {}
    split: dict[tuple[str, int, int], list[bytes]] = {}

    def find(source: KafkaSource) -> Mapping[str, str]:
        if not values:  # indexed at the first record that needs it
            values.update(
                ((s["topic"], s["partition"], s["offset"]), v or b"") for v, s in messages
            )
        at = (source["topic"], source["partition"], source["offset"])
        raw = values.get(at, b"").strip(b" \t\r\n")
        if "index" not in source:
            return labels_of(raw)
        parts = split.get(at)
        if parts is None:
            parts = _parts(raw)
            split[at] = parts
        index = source["index"]
        return labels_of(parts[index]) if 0 <= index < len(parts) else _NO_LABELS

    return find


def _parts(raw: bytes) -> list[bytes]:
    if raw[:1] == b"[":
        try:
            return [bytes(item) for item in _LABELS_MANY.decode(raw)]
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            pass
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return [s for s in (line.strip(b" \t\r\n") for line in lines) if s]
