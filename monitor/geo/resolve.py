"""Place a record on the map: source and destination countries, receiving organisation.

Order fixed by the contract. Destination: GeoIP of `dst_ip`, then the endpoint
registry (egress: `dst_host`; api_call: the host of `endpoint`), else
unresolved. Source: the declared `src_country`, then GeoIP of `src_ip`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NotRequired, Protocol, TypedDict

from monitor.bounds import MAX_LABEL, MAX_RECORD_CATEGORIES, categories
from monitor.config.disclosures import EndpointRegistry, host_of
from monitor.contract.schemas import Record, Source
from monitor.geo.embedded import parse_embedded

__all__ = ["CountryLookup", "Flow", "FlowState", "Resolver", "StaticLookup"]


class CountryLookup(Protocol):
    """What resolution needs of a GeoIP database (see monitor.geo.geoip.GeoIP)."""

    @property
    def build_date(self) -> str: ...

    def country(self, ip: str) -> str | None: ...

    def asn(self, ip: str) -> tuple[int, str] | None: ...


class StaticLookup:
    """A fixed IP-to-country map: for rule examples, which must not depend on a database."""

    def __init__(self, countries: Mapping[str, str], build_date: str = "static") -> None:
        self._countries = dict(countries)
        self._build_date = build_date

    @property
    def build_date(self) -> str:
        return self._build_date

    def country(self, ip: str) -> str | None:
        code = self._countries.get(ip)
        if code is None and (inner := parse_embedded(ip)) is not None:
            # As GeoIP does, so an example can show a NAT64 address placed by its IPv4.
            code = self._countries.get(str(inner))
        return code

    def asn(self, ip: str) -> tuple[int, str] | None:
        return None


class FlowState(TypedDict):
    """A flow as stateful rules and alert groups keep it (`Flow.to_state`)."""

    kind: str
    event_id: str
    ts: int
    platform: str
    src_country: str | None
    dst_country: str | None
    subject_region: str | None
    dataset_id: str | None
    bytes: int
    records: int
    data_categories: list[str]
    source: Source
    truncated: NotRequired[bool]  # some labels were cut (monitor.bounds)
    dst_org: NotRequired[str]  # when known: an organisation, not personal data


@dataclass(slots=True)
class Flow:
    """A record placed on the map. `personal`: set when its rules are evaluated."""

    record: Record
    source: Source
    src_country: str | None
    dst_country: str | None
    dst_org: str | None = None
    dst_via: str | None = None  # "geoip" | "registry" | None
    personal: bool = False

    def to_state(self) -> FlowState:
        """The fields stateful rules and alert groups need, JSON-ready (no personal data).

        Its labels are bounded (monitor.bounds): one call naming 1,000
        subjects becomes 1,000 such values.
        """
        r = self.record
        labels, cut = categories(r.data_categories, MAX_RECORD_CATEGORIES)
        state: FlowState = {
            "kind": r.kind,
            "event_id": r.event_id,
            "ts": r.ts,
            "platform": r.platform,
            "src_country": self.src_country,
            "dst_country": self.dst_country,
            "subject_region": r.subject_region,
            "dataset_id": r.dataset_id,
            "bytes": r.bytes or 0,
            "records": r.records or 0,
            "data_categories": labels,
            "source": self.source,
        }
        if cut:
            state["truncated"] = True
        if self.dst_org:
            state["dst_org"] = self.dst_org[:MAX_LABEL]
        return state


class Resolver:
    """Resolves records against a GeoIP database (optional) and the endpoint registry."""

    def __init__(self, geoip: CountryLookup | None, endpoints: EndpointRegistry) -> None:
        self.geoip = geoip
        self.endpoints = endpoints
        self.geoip_misses = 0  # dst_ip present but not in the database

    @property
    def geoip_build(self) -> str | None:
        return self.geoip.build_date if self.geoip is not None else None

    def resolve(self, record: Record, source: Source) -> Flow:
        geoip = self.geoip
        dst_country: str | None = None
        dst_via: str | None = None
        dst_org: str | None = record.recipient
        if record.dst_ip is not None and geoip is not None:
            dst_country = geoip.country(record.dst_ip)
            if dst_country is None:
                self.geoip_misses += 1
            else:
                dst_via = "geoip"
            if dst_org is None:
                asn = geoip.asn(record.dst_ip)
                if asn is not None:
                    dst_org = asn[1]
        if dst_country is None:
            host = record.dst_host if record.kind == "egress" else host_of(record.endpoint)
            dst_country = self.endpoints.country(host)
            if dst_country is not None:
                dst_via = "registry"
        src_country = record.src_country
        if src_country is None and record.src_ip is not None and geoip is not None:
            src_country = geoip.country(record.src_ip)
        return Flow(record, source, src_country, dst_country, dst_org, dst_via)
