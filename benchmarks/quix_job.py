"""The monitor's job in Quix Streams, for `benchmarks.bench` (c): same core, another framework.

    .venv/bin/python -m benchmarks.quix_job --bootstrap HOST:PORT --geoip DB --prefix P \\
        --total N --status FILE --state-dir DIR

Reads the three telemetry topics `<P>.egress|api|consent` from the beginning and
runs what `xborder worker` runs, message by message: the project's ingest
(decode, resolve, rules) on each message; routed items repartitioned by
state key (`group_by`) to the stateful rules with their state in Quix State
(RocksDB, changelog topics); hits repartitioned by alert group key to the
alert grouper, whose alerts go to `<P>.alerts.quix`; dead letters to
`<P>.dead-letters.quix`. Only the stream framework around the
core differs from the worker, so the ratio of the two measures it.

Progress goes to `--status` as JSON ({"seen", "done"}): done once every
input item was ingested and every repartitioned message processed.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from agents.stores import TableSeen
from monitor.alerts.grouping import AlertContext, AlertGrouper, group_key
from monitor.config.runtime import load_runtime
from monitor.config.settings import Settings
from monitor.detect.stages import group_hits, ingest


class StateTable:
    """The `get`/`[]=` a Store needs, over the Quix State of the message being processed."""

    state: Any = None

    def get(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.state.set(key, value)


class Progress:
    def __init__(self) -> None:
        self.seen = 0  # input items ingested (records and dead letters)
        self.routed_out = self.routed_in = 0
        self.hits_out = self.hits_in = 0

    def done(self, total: int) -> bool:
        return (
            self.seen >= total
            and self.routed_in == self.routed_out
            and self.hits_in == self.hits_out
        )


def main() -> None:
    from quixstreams import Application

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--geoip", type=Path, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args()

    settings = Settings(geoip_country=args.geoip)
    runtime = load_runtime(settings)
    pack, resolver = runtime.pack, runtime.resolver()
    context = AlertContext(pack.version, resolver.geoip_build)
    progress = Progress()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=f"quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=str(args.state_dir),
        loglevel="WARNING",
        commit_interval=1.0,
        processing_guarantee="at-least-once",
    )
    inputs = [
        app.topic(f"{args.prefix}.{name}", value_deserializer="bytes")
        for name in ("egress", "api", "consent")
    ]
    dead_letters = app.topic(f"{args.prefix}.dead-letters.quix", value_serializer="json")
    alerts = app.topic(f"{args.prefix}.alerts.quix", value_serializer="json")

    def ingest_message(value: bytes, key: Any, ts: int, headers: Any) -> list[dict[str, Any]]:
        if progress.seen >= args.total:
            return []  # timed on the first `total` items: let the pipeline drain
        out = ingest([(value, {"topic": "quix"})], pack, resolver, 1)
        progress.seen += sum(out.records.values()) + len(out.dead_letters)
        items: list[dict[str, Any]] = [{"t": "dead", "v": d} for d in out.dead_letters]
        items += [{"t": "hit", "v": h} for hits in out.hits.values() for h in hits]
        items += [{"t": "routed", "v": r} for routed in out.routed.values() for r in routed]
        progress.routed_out += sum(1 for i in items if i["t"] == "routed")
        progress.hits_out += sum(1 for i in items if i["t"] == "hit")
        return items

    state_table = StateTable()
    state_seen = TableSeen(state_table)
    groups_table = StateTable()
    grouper = AlertGrouper(pack, groups_table, TableSeen(groups_table))  # type: ignore[arg-type]

    def apply_state(item: dict[str, Any], state: Any) -> list[dict[str, Any]]:
        progress.routed_in += 1
        rule = pack.by_id.get(item["rule"])
        if rule is None or rule.type is None:
            return []
        state_table.state = state
        hits = rule.type.apply(state_table, state_seen, item["key"], item["item"])  # type: ignore[arg-type]
        progress.hits_out += len(hits)
        return hits

    def group(hit: dict[str, Any], state: Any) -> list[dict[str, Any]]:
        progress.hits_in += 1
        groups_table.state = state
        return [e.alert for e in group_hits([hit], pack, grouper, context)]

    streams = [app.dataframe(topic) for topic in inputs]
    sdf = streams[0].concat(streams[1]).concat(streams[2])
    sdf = sdf.apply(ingest_message, expand=True, metadata=True)
    sdf[sdf.apply(lambda i: i["t"] == "dead")].apply(lambda i: i["v"]).to_topic(dead_letters)
    hits = sdf[sdf.apply(lambda i: i["t"] == "hit")].apply(lambda i: i["v"])
    state_hits = (
        sdf[sdf.apply(lambda i: i["t"] == "routed")]
        .apply(lambda i: i["v"])
        .group_by(lambda r: r["key"], name="state")
        .apply(apply_state, stateful=True, expand=True)
    )
    (
        hits.concat(state_hits)
        .group_by(lambda h: group_key(pack.by_id[h["rule"]], h), name="groups")
        .apply(group, stateful=True, expand=True)
        .to_topic(alerts)
    )

    def report() -> None:
        while True:
            done = progress.done(args.total)
            args.status.write_text(json.dumps({"seen": progress.seen, "done": done}))
            time.sleep(0.05)

    threading.Thread(target=report, daemon=True).start()
    app.run()


if __name__ == "__main__":
    main()
