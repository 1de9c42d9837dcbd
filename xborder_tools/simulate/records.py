"""Records of the simulated platforms: the small random draws and every kind of lawful record.

Lawful traffic is kept lawful under the rule pack on purpose, so that every
alert a run produces traces back to an injection:

- personal data of home-region users goes abroad only to countries its
  platform disclosed, with items it disclosed, only with a legal basis
  (a certification only while one disclosed for it is in force),
  never with resident registration numbers and never stored in a watch
  country;
- transfers on consent name only subjects whose consent is in force;
- the `records` a platform sends to one country in one tumbling window stay
  under `LAWFUL_VOLUME_SHARE` of the bulk threshold;
- every personal destination resolves (GeoIP pools or registry hosts); only
  system traffic goes to private addresses or unknown hosts.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, TypeVar

from monitor.config.disclosures import Disclosure
from xborder_tools.simulate.addresses import pools
from xborder_tools.simulate.model import SimConfig
from xborder_tools.simulate.traffic import (
    ABROAD_OPS,
    BUILTIN_NETWORKS,
    DOMESTIC_OPS,
    FOREIGN_DESTINATIONS,
    FOREIGN_REGIONS,
    LAWFUL_VOLUME_SHARE,
    OTHER_PLATFORM_WEIGHT,
    OTHER_SERVICES,
    PLATFORM_WEIGHTS,
    SERVICES,
    SYSTEM_OPS,
    UNKNOWN_HOSTS,
    Op,
    under,
)
from xborder_tools.simulate.world import World

__all__ = ["KST", "RecordMaker", "put"]

_T = TypeVar("_T")
KST: Final = timezone(timedelta(hours=9))


def put(rec: dict[str, Any], key: str, value: str | None) -> None:
    """Set what a disclosure gives (its recipient and purpose are optional)."""
    if value is not None:
        rec[key] = value


def _lawful_op(op: Op, d: Disclosure) -> bool:
    """Whether `op` may lawfully go to `d`'s recipient without storing there."""
    return not op.stores and under(op.categories[0], d.items)


class RecordMaker:
    """Draws records from one random generator; keeps the state lawful traffic honours."""

    def __init__(self, cfg: SimConfig, world: World, rng: random.Random) -> None:
        self.cfg = cfg
        self.world = world
        self.home = world.home
        self.rng = rng
        self.pools = pools(rng, cfg.networks if cfg.networks is not None else BUILTIN_NETWORKS)
        if self.home not in self.pools:
            raise ValueError(f"no address networks for {self.home}, the home region")
        self.bulk_threshold = world.bulk_threshold
        if cfg.bulk_threshold is not None:
            self.bulk_threshold = cfg.bulk_threshold
        self.bulk_window_ms = world.bulk_window_ms
        if cfg.bulk_window_ms is not None:
            self.bulk_window_ms = cfg.bulk_window_ms
        weights = cfg.platforms
        if weights is None:
            weights = {p: PLATFORM_WEIGHTS.get(p, OTHER_PLATFORM_WEIGHT) for p in world.platforms}
        # Per platform, the disclosed transfers lawful traffic can make: to a country
        # with addresses, of items some operation carries.
        self.disclosed: dict[str, tuple[Disclosure, ...]] = {}
        for platform in weights:
            if platform not in world.platforms:
                raise ValueError(
                    f"platforms must be among those that disclosed a transfer "
                    f"({', '.join(world.platforms)}), got {platform!r}"
                )
            entries = world.disclosed[platform]
            usable = tuple(
                d
                for d in entries
                if d.country in self.pools and any(_lawful_op(op, d) for op in ABROAD_OPS)
            )
            if not usable:
                countries = ", ".join(sorted({d.country for d in entries}))
                raise ValueError(
                    f"{platform}: nothing to send lawfully; no address networks for "
                    f"{countries}, or items no operation carries"
                )
            self.disclosed[platform] = usable
        if not self.disclosed:
            raise ValueError("no platform to simulate: the disclosures name none")
        self.platforms = list(weights)
        self.platform_cum = self._cum(list(weights.values()))
        # Consent state the lawful traffic honours: subjects whose consent is in force
        # (names for consent-based calls) and withdrawn ones (never named again).
        self.granted: dict[str, list[str]] = {p: [] for p in self.platforms}
        self.withdrawn: dict[str, set[str]] = {p: set() for p in self.platforms}
        # records sent per (platform, country, window start) by everything but bulk episodes
        self.volume: dict[tuple[str, str, int], int] = {}
        self.volume_window = 0

    # -- setup ----------------------------------------------------------------------------

    @staticmethod
    def _cum(weights: Sequence[float]) -> list[float]:
        out, acc = [], 0.0
        for w in weights:
            acc += w
            out.append(acc)
        return out

    # -- small draws --------------------------------------------------------------------------

    def pick(self, seq: Sequence[_T]) -> _T:
        return seq[self.rng.randrange(len(seq))]

    def platform(self) -> str:
        p: str = self.rng.choices(self.platforms, cum_weights=self.platform_cum)[0]
        return p

    def ip(self, country: str) -> str:
        pool = self.pools[country]
        if pool.v6 and (not pool.v4 or self.rng.random() < self.cfg.ipv6_share):
            return str(self.pick(pool.v6))
        return str(self.pick(pool.v4))

    def private_ip(self) -> str:
        r = self.rng
        return self.pick(
            (
                f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
                f"172.{r.randrange(16, 32)}.{r.randrange(256)}.{r.randrange(1, 255)}",
                f"192.168.{r.randrange(256)}.{r.randrange(1, 255)}",
                f"fd{r.randrange(256):02x}:{r.randrange(65536):x}::{r.randrange(1, 65536):x}",
            )
        )

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_subject(self) -> str:
        return f"u-{self.rng.getrandbits(64):016x}"

    def host(self, country: str, service: str = "api") -> str:
        hosts = self.world.hosts.get(country, {})
        return self.pick(hosts.get(service) or hosts.get("api") or ("api.partner.example",))

    def countries(self, wanted: Sequence[str]) -> list[str]:
        return [c for c in wanted if c in self.pools]

    def ts(self, ms: int, form: str) -> int | str:
        if form == "ms":
            return ms
        tz = UTC if form == "utc" else KST
        # Whole seconds plus exact milliseconds: ms / 1000 as a float can round a digit away.
        dt = datetime.fromtimestamp(ms // 1000, tz).replace(microsecond=ms % 1000 * 1000)
        text = dt.isoformat(timespec="milliseconds")
        return text.replace("+00:00", "Z")

    def head(self, kind: str, platform: str, role: str, ms: int) -> dict[str, Any]:
        service, form = SERVICES.get(platform, OTHER_SERVICES)[role]
        rec: dict[str, Any] = {"kind": kind}
        if self.rng.random() < 0.3:
            rec["v"] = 1  # optional; some shippers always send it
        rec["event_id"] = self.event_id()
        rec["ts"] = self.ts(ms, form)
        rec["platform"] = platform
        rec["service"] = service
        return rec

    def take_volume(self, platform: str, country: str, ms: int, wanted: int) -> int:
        """Records this non-bulk record may carry without nearing the bulk threshold."""
        window = ms - ms % self.bulk_window_ms
        if window > self.volume_window:
            self.volume_window = window
            # Late records reach back at most one window in this generator.
            floor = window - self.bulk_window_ms
            self.volume = {k: v for k, v in self.volume.items() if k[2] >= floor}
        key = (platform, country, window)
        used = self.volume.get(key, 0)
        room = int(self.bulk_threshold * LAWFUL_VOLUME_SHARE) - used
        got = max(0, min(wanted, room))
        self.volume[key] = used + got
        return got

    def set_records(
        self, rec: dict[str, Any], platform: str, country: str, ms: int, n: int
    ) -> None:
        got = self.take_volume(platform, country, ms, n)
        if got > 0:
            rec["records"] = got

    def subjects_granted(self, platform: str, n: int) -> list[str]:
        pool = self.granted[platform]
        return [self.pick(pool) for _ in range(min(n, len(pool)))]

    def disclosure(self, platform: str) -> Disclosure:
        options = self.disclosed[platform]
        return options[self.rng.randrange(len(options))]

    def lawful_ops(self, d: Disclosure) -> list[Op]:
        """The operations that may carry personal data to `d`'s recipient (never none)."""
        return [op for op in ABROAD_OPS if _lawful_op(op, d)]

    def categories(self, op: Op, items: Sequence[str] | None) -> list[str]:
        allowed = [c for c in op.categories if items is None or under(c, items)]
        extra = [c for c in allowed[1:] if self.rng.random() < 0.5]
        return [allowed[0], *extra]

    def dataset(self, platform: str, stem: str, ms: int) -> str:
        day = datetime.fromtimestamp(ms / 1000, KST).strftime("%Y%m%d")
        return f"ds-{platform}-{stem}-{day}"

    # -- records of each kind -------------------------------------------------------------------

    def api_record(
        self,
        platform: str,
        ms: int,
        op: Op,
        country: str,
        cats: list[str],
        *,
        registry_only: bool = False,
    ) -> dict[str, Any]:
        rng = self.rng
        rec = self.head("api_call", platform, op.role, ms)
        rec["operation"] = op.name
        host = self.host(country, op.service)
        if op.service == "storage":
            day = datetime.fromtimestamp(ms // 1000, KST).strftime("%Y/%m/%d")
            path = f"/{platform}-{op.dataset or 'data'}/{day}/{rng.getrandbits(48):012x}.json.gz"
        elif op.service == "stream":
            path = "/"
        else:
            path = "/v1/" + op.name.replace(".", "/")
        rec["endpoint"] = f"https://{host}{path}"
        # Without dst_ip only the registry can place the call: only where it places the host.
        if not (registry_only and self.world.registry_places(host, country)):
            rec["dst_ip"] = self.ip(country)
        if rng.random() < 0.6:
            rec["src_country"] = self.home
        else:
            rec["src_ip"] = self.ip(self.home)
        rec["method"] = op.method
        rec["status"] = rng.choices((200, 201, 204, 429, 503), cum_weights=(70, 85, 95, 98, 100))[0]
        rec["subject_region"] = self.home
        rec["data_categories"] = cats
        return rec

    def egress_record(
        self, platform: str, ms: int, role: str, src: str, dst: str, cats: list[str] | None
    ) -> dict[str, Any]:
        rng = self.rng
        rec = self.head("egress", platform, role, ms)
        rec["src_ip"] = self.ip(src)
        rec["dst_ip"] = self.ip(dst)
        rec["bytes"] = 0
        rec["dst_port"] = 443
        rec["protocol"] = "tcp"
        if rng.random() < 0.6:
            rec["dst_host"] = self.host(dst, self.pick(("api", "storage", "stream")))
        if src == self.home and rng.random() < 0.3:
            rec["src_country"] = src
        if cats is not None:
            rec["data_categories"] = cats
        return rec

    def egress_batch(
        self,
        platform: str,
        ms: int,
        op: Op,
        src: str,
        dst: str,
        cats: list[str],
        region: str,
        record_bytes: tuple[int, int],
    ) -> dict[str, Any]:
        """Egress of a batch of `op`'s records about `region`'s users."""
        rec = self.egress_record(platform, ms, op.role, src, dst, cats)
        rec["subject_region"] = region
        rec["records"] = self.rng.randint(*op.records)
        rec["bytes"] = rec["records"] * self.rng.randint(*record_bytes)
        return rec

    # -- lawful records -------------------------------------------------------------------------

    def lawful(self, ms: int) -> dict[str, Any]:
        u = self.rng.random()
        platform = self.platform()
        if u < 0.08:
            return self.consent_change(platform, ms)
        if u < 0.38:
            return self.api_abroad(platform, ms)
        if u < 0.55:
            return self.egress_abroad(platform, ms)
        if u < 0.75:
            return self.domestic(platform, ms)
        if u < 0.95:
            return self.system(platform, ms)
        return self.foreign(platform, ms)

    def api_abroad(self, platform: str, ms: int) -> dict[str, Any]:
        rng = self.rng
        d = self.disclosure(platform)
        # Storage only outside the watch countries: storing there is a violation of its own.
        ops = [
            op
            for op in ABROAD_OPS
            if under(op.categories[0], d.items)
            and not (op.stores and d.country in self.world.watch_countries)
        ]
        op: Op = self.pick(ops)
        use_registry = rng.random() < 0.25
        rec = self.api_record(
            platform, ms, op, d.country, self.categories(op, d.items), registry_only=use_registry
        )
        put(rec, "recipient", d.recipient)
        self.set_records(rec, platform, d.country, ms, rng.randint(*op.records))
        basis = rng.choices(
            ("contract", "consent", "certification", "law"), cum_weights=(55, 90, 98, 100)
        )[0]
        cert = d.certification
        if basis == "certification" and (cert is None or ms >= cert.ends_ms):
            basis = "contract"  # claiming a certification not in force is a violation
        if op.subjects:
            if basis == "consent":
                ids = self.subjects_granted(platform, rng.randint(1, 3))
                if not ids:
                    basis = "contract"  # nobody has consented yet
                else:
                    rec["subject_ids"] = ids
            if basis != "consent":
                rec["subject_ids"] = [self.new_subject() for _ in range(rng.randint(1, 2))]
        elif basis == "consent":
            basis = "contract"  # consent is per subject; a bulk export cannot rest on it
        if op.dataset is not None:
            rec["dataset_id"] = self.dataset(platform, op.dataset, ms)
        put(rec, "purpose", d.purpose)
        rec["legal_basis"] = basis
        if op.stores:
            rec["stores"] = True
        return rec

    def egress_abroad(self, platform: str, ms: int) -> dict[str, Any]:
        rng = self.rng
        d = self.disclosure(platform)
        op: Op = self.pick([op for op in ABROAD_OPS if under(op.categories[0], d.items)])
        rec = self.egress_record(
            platform, ms, op.role, self.home, d.country, self.categories(op, d.items)
        )
        rec["subject_region"] = self.home
        n = rng.randint(1, 120)
        self.set_records(rec, platform, d.country, ms, n)
        rec["bytes"] = max(1, n) * rng.randint(400, 1600)
        if rng.random() < 0.3:
            rec["dataset_id"] = self.dataset(platform, op.dataset or "events", ms)
        return rec

    def domestic(self, platform: str, ms: int) -> dict[str, Any]:
        rng = self.rng
        op: Op = self.pick(DOMESTIC_OPS)
        cats = self.categories(op, None)
        if rng.random() < 0.5:
            rec = self.api_record(
                platform, ms, op, self.home, cats, registry_only=rng.random() < 0.3
            )
            rec["records"] = rng.randint(*op.records)
            if op.stores:
                rec["stores"] = True
            return rec
        home = self.home
        return self.egress_batch(platform, ms, op, home, home, cats, home, (300, 2000))

    def system(self, platform: str, ms: int) -> dict[str, Any]:
        rng = self.rng
        name, category = self.pick(SYSTEM_OPS)
        dst = self.pick(list(self.pools))
        if rng.random() < 0.5:
            rec = self.head("api_call", platform, "edge", ms)
            rec["operation"] = name
            if rng.random() < 0.15:
                rec["endpoint"] = f"https://{self.pick(UNKNOWN_HOSTS)}/v1/{name.split('.')[0]}"
            else:
                rec["endpoint"] = f"https://{self.host(dst)}/v1/{name.split('.')[0]}"
                rec["dst_ip"] = self.ip(dst)
            rec["src_ip"] = self.ip(self.home)
            rec["method"] = (
                "GET" if name.endswith((".get", ".fetch")) or name == "healthcheck" else "POST"
            )
            rec["status"] = 200
        else:
            rec = self.head("egress", platform, "edge", ms)
            rec["src_ip"] = self.ip(self.home)
            rec["dst_ip"] = self.private_ip() if rng.random() < 0.2 else self.ip(dst)
            rec["bytes"] = rng.randint(200, 2_000_000)
            rec["dst_port"] = self.pick((443, 443, 4317, 9092, 53))
            rec["protocol"] = "udp" if rec["dst_port"] == 53 else "tcp"
        if category is not None:
            rec["data_categories"] = [category]
        return rec

    def foreign(self, platform: str, ms: int) -> dict[str, Any]:
        """Other regions' users: personal data, but not the home region's to protect."""
        regions = [c for c in self.countries(FOREIGN_REGIONS) if c != self.home]
        region = self.pick(regions or ["US"])
        dst = self.pick(self.countries(FOREIGN_DESTINATIONS) or list(self.pools))
        op: Op = self.pick(ABROAD_OPS)
        cats = self.categories(op, None)
        return self.egress_batch(platform, ms, op, region, dst, cats, region, (400, 1600))

    def consent_change(self, platform: str, ms: int) -> dict[str, Any]:
        rng = self.rng
        granted = self.granted[platform]
        rec = self.head("consent", platform, "consent", ms)
        if granted and rng.random() < 0.08:
            # A lawful withdrawal: the subject is never named on consent again.
            i = rng.randrange(len(granted))
            subject = granted[i]
            granted[i] = granted[-1]
            granted.pop()
            self.withdrawn[platform].add(subject)
            rec["subject_id"] = subject
            rec["scope"] = "overseas_transfer"
            rec["granted"] = False
            if rng.random() < 0.5:
                rec["countries"] = [self.disclosure(platform).country]
            return rec
        if granted and rng.random() < 0.2:
            subject = self.pick(granted)  # renewed consent, e.g. after a policy update
        else:
            subject = self.new_subject()
            if len(granted) < 50_000:
                granted.append(subject)
            else:
                granted[rng.randrange(len(granted))] = subject
        rec["subject_id"] = subject
        rec["scope"] = "overseas_transfer"
        rec["granted"] = True
        if rng.random() < 0.6:
            rec["countries"] = ["*"]
        return rec
