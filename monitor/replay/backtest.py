"""Back-testing a rule change: the alerts a new pack gives against a baseline's, by alert id.

Both packs see the same records in the same order in one replay, so an alert
that the edit leaves alone keeps its id, and the difference is what the
edit would have done: alerts it adds, alerts it removes, and alerts whose
findings change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.alerts.grouping import Alert

__all__ = ["COMPARED", "BacktestDiff", "FinalAlerts", "diff_alerts"]

# What an alert finds. Left out: when it was emitted, its revision (how many
# updates it took, which depends on batching) and the pack's version, which
# differ by construction.
COMPARED: tuple[str, ...] = (
    "rule_id",
    "title",
    "severity",
    "legal_ref",
    "platform",
    "src_country",
    "dst_country",
    "subject_region",
    "dataset_id",
    "first_seen",
    "last_seen",
    "event_count",
    "bytes",
    "records",
    "data_categories",
    "evidence",
    "truncated",
)


class FinalAlerts(dict[str, Alert]):
    """The last state of each alert, by id (an alert is emitted again as it grows)."""

    def keep(self, alert: Alert) -> None:
        self[alert["alert_id"]] = alert


@dataclass
class BacktestDiff:
    rules_version: str
    baseline_version: str
    added: list[Alert] = field(default_factory=list)
    removed: list[Alert] = field(default_factory=list)
    # (new alert, {field: [baseline value, new value]})
    changed: list[tuple[Alert, dict[str, list[Any]]]] = field(default_factory=list)
    unchanged: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "rules_version": self.rules_version,
            "baseline_rules_version": self.baseline_version,
            "added": self.added,
            "removed": self.removed,
            "changed": [
                {"alert_id": a["alert_id"], "rule_id": a["rule_id"], "fields": fields}
                for a, fields in self.changed
            ],
            "unchanged": self.unchanged,
        }

    def render(self) -> str:
        out = [
            f"back-test: rules {self.rules_version} against baseline {self.baseline_version}",
            f"alerts added: {len(self.added)}",
            *(f"  + {_line(a)}" for a in self.added),
            f"alerts removed: {len(self.removed)}",
            *(f"  - {_line(a)}" for a in self.removed),
            f"alerts changed: {len(self.changed)}",
        ]
        for alert, fields in self.changed:
            what = ", ".join(
                f"{name} {_short(old)} -> {_short(new)}" for name, (old, new) in fields.items()
            )
            out.append(f"  ~ {_line(alert)}: {what}")
        out.append(f"alerts unchanged: {self.unchanged}")
        return "\n".join(out)


def diff_alerts(
    baseline: dict[str, Alert], new: dict[str, Alert], rules_version: str, baseline_version: str
) -> BacktestDiff:
    """What the new pack adds, removes and changes, each list in a stable order."""
    diff = BacktestDiff(rules_version, baseline_version)
    order = sorted(set(baseline) | set(new), key=lambda i: _order(baseline.get(i) or new[i]))
    for alert_id in order:
        old, now = baseline.get(alert_id), new.get(alert_id)
        if old is None and now is not None:
            diff.added.append(now)
        elif now is None and old is not None:
            diff.removed.append(old)
        elif old is not None and now is not None:
            fields = {
                name: [old.get(name), now.get(name)]
                for name in COMPARED
                if old.get(name) != now.get(name)
            }
            if fields:
                diff.changed.append((now, fields))
            else:
                diff.unchanged += 1
    return diff


def _order(alert: Alert) -> tuple[str, str, str]:
    return (alert["first_seen"], alert["rule_id"], alert["alert_id"])


def _line(a: Alert) -> str:
    route = f"{a['src_country'] or '??'}->{a['dst_country'] or '??'}"
    return (
        f"{a['alert_id'][:12]} {a['rule_id']} {a['platform'] or '-'} {route} "
        f"events={a['event_count']} records={a['records']}"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
