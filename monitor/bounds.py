"""The monitor's own limits on what it builds from many records.

The contract bounds each record (1 MiB, 1,000 subject ids, integers up to
2^64-1); what the monitor derives from many of them is bounded here, so no
run of valid records can grow a sum past what JSON encoders take, or a
value past what a Kafka message, a table entry or an alert may hold.

Reaching a bound never fails: a sum saturates at `COUNT_MAX`, a list keeps
a deterministic part of itself, the value is marked (`truncated` in state
and alerts) and the event is counted in `REACHED`, which the worker exports
as `xborder_bounds_reached_total{bound}`. The bounds are chosen so the cut
does not depend on the order records arrive in: the same records give the
same kept labels whichever merges first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Final, NotRequired, TypedDict

__all__ = [
    "BOUND_NAMES",
    "COUNT_MAX",
    "MAX_BUCKETS_PER_KEY",
    "MAX_CALLS_PER_SUBJECT",
    "MAX_CATEGORIES",
    "MAX_CONSENTS_PER_SUBJECT",
    "MAX_LABEL",
    "MAX_RECORD_CATEGORIES",
    "REACHED",
    "Labelled",
    "NewLabels",
    "add",
    "categories",
    "fold_categories",
]

COUNT_MAX: Final = (1 << 64) - 1  # the contract's largest count; sums stay here
MAX_LABEL: Final = 128  # a longer label matches rules but is not kept in state or alerts
MAX_CATEGORIES: Final = 64  # labels kept per window, alert group and alert
MAX_ORGS: Final = 8  # receiving organisations kept per alert group and alert
MAX_RECORD_CATEGORIES: Final = 32  # labels kept of one record in state items (x 1,000 subjects)
# State values are Kafka messages on their changelog (1 MB by default): a
# call or pending hop holds a record's state (at most about 9 KB with the
# longest texts the contract allows), a window or a group at most about
# 140 KB, so these counts keep every value under about 700 KB.
MAX_CALLS_PER_SUBJECT: Final = 64  # consent rule: calls kept per subject (newest)
MAX_CONSENTS_PER_SUBJECT: Final = 64  # consent rule: consent records kept per subject (newest)
MAX_PENDING_HOPS: Final = 64  # onward rule: second hops waiting for their first, per dataset
MAX_FIRST_HOPS: Final = 512  # onward rule: first hops kept per dataset (newest)
# Threshold rule: buckets kept per key (newest; a rule keeps window plus
# allowed lateness of them, 121 for one hour and one hour, a sixtieth of the
# window each). A bucket keeps one evidence entry and its labels (a few
# taxonomy paths in practice, MAX_CATEGORIES at most).
MAX_BUCKETS_PER_KEY: Final = 128
# Threshold rule: grouping windows' totals kept per key (newest).
MAX_WINDOWS_PER_KEY: Final = 4
MAX_GROUPS_PER_KEY: Final = 16  # alert groups kept per group key (newest)

# Times each bound was reached, by name; read by the metrics collector.
REACHED: Counter[str] = Counter()
BOUND_NAMES: Final = ("count", "categories", "calls", "consents", "hops", "windows", "groups")


def add(a: int, b: int) -> int:
    """A sum of counts, saturating at COUNT_MAX."""
    total = a + b
    if total > COUNT_MAX:
        REACHED["count"] += 1
        return COUNT_MAX
    return total


def categories(labels: Collection[str], limit: int = MAX_CATEGORIES) -> tuple[list[str], bool]:
    """The labels a value keeps, and whether any were cut.

    Within the bounds the labels are kept as given. Beyond them: the first
    `limit` of the distinct labels of at most MAX_LABEL characters, sorted. A
    sorted prefix of fixed length makes the cut order-free: bounding a union
    of bounded sets keeps what bounding the whole union would.
    """
    if len(labels) <= limit and max(map(len, labels), default=0) <= MAX_LABEL:
        return list(labels), False
    kept = sorted({label for label in labels if len(label) <= MAX_LABEL})[:limit]
    if len(kept) < len(set(labels)):
        REACHED["categories"] += 1
        return kept, True
    return kept, False


class Labelled(TypedDict):
    """What keeps the labels of many records: a threshold window, an alert group."""

    categories: list[str]
    truncated: NotRequired[bool]


class NewLabels(TypedDict):
    """What brings it more: a window's item, a hit."""

    categories: list[str]
    truncated: bool


def fold_categories(value: Labelled, other: NewLabels) -> None:
    """Union `other`'s categories into `value`'s within the bound; carry `truncated` over."""
    if not set(other["categories"]) <= set(value["categories"]):
        labels, cut = categories(set(value["categories"]) | set(other["categories"]))
        value["categories"] = sorted(labels)
        if cut:
            value["truncated"] = True
    if other.get("truncated"):
        value["truncated"] = True


class Organised(TypedDict):
    """What keeps the receiving organisations of many records: an alert group."""

    orgs: NotRequired[list[str]]
    truncated: NotRequired[bool]


def fold_orgs(value: Organised, orgs: Collection[str]) -> None:
    """Union `orgs` into `value`'s, keeping the first MAX_ORGS sorted: order-free, as labels."""
    have = value.get("orgs", [])
    if set(orgs) <= set(have):
        return
    union = sorted(set(have) | set(orgs))
    if len(union) > MAX_ORGS:
        union = union[:MAX_ORGS]
        value["truncated"] = True
    value["orgs"] = union
