"""`xborder deliveries`: the delivery history, as a case officer's supervisor or an auditor
reads it.

Each subcommand is a function in `SUBCOMMANDS` that adds its parser; `list` reads
the history, `retry` sends the undelivered topic's deliveries again. The history is opened only when a subcommand runs, so every other
`xborder` command starts without it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

from monitor.cli.flags import DELIVERIES, NOTIFY, add_setting_flags, settings_from

if TYPE_CHECKING:
    from monitor.delivery.model import Attempt

__all__ = ["SUBCOMMANDS", "format_table", "parse_since", "register"]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

_COLUMNS = ("TIME", "ALERT", "REV", "RECEIVER", "ATTEMPT", "OUTCOME", "STATUS", "ERROR")
# A receiver's status line reaches the terminal: no escape sequences, one line.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ERROR_CHARS = 120


def parse_since(text: str, now_ms: int | None = None) -> int:
    """`--since`: a duration back from now (30m, 24h, 7d) or an RFC 3339 time, as epoch ms."""
    import time

    from monitor.engine.model import parse_duration

    ago = parse_duration(text)
    if ago is not None:
        return (int(time.time() * 1000) if now_ms is None else now_ms) - ago
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "a duration back from now (30m, 24h, 7d) or an RFC 3339 time (2026-06-17T09:00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError("an RFC 3339 time needs its offset (Z or +09:00)")
    return int(when.timestamp() * 1000)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def format_table(attempts: Sequence[Attempt]) -> str:
    """One line per attempt under a header; the error column last, unpadded."""
    from monitor.alerts.grouping import iso_ms

    rows = [_COLUMNS] + [
        (
            iso_ms(a.at_ms),
            a.alert_id,
            str(a.revision),
            a.receiver,
            str(a.attempt),
            a.outcome,
            _cell(a.status),
            _UNPRINTABLE.sub(" ", _cell(a.error))[:_ERROR_CHARS],
        )
        for a in attempts
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    )


def cmd_list(args: argparse.Namespace) -> int:
    import dataclasses
    from contextlib import closing

    import orjson

    from monitor.delivery.history import open_history

    with closing(open_history(settings_from(args), create=False)) as history:
        attempts = history.list(
            alert_id=args.alert, receiver=args.receiver, since_ms=args.since, limit=args.limit
        )
    if args.json:
        out = sys.stdout.buffer
        for attempt in attempts:
            out.write(orjson.dumps(dataclasses.asdict(attempt)) + b"\n")
        out.flush()
    elif attempts:
        print(format_table(attempts))
    else:
        print("no delivery attempts match", file=sys.stderr)
    return 0


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("a whole number of at least 1")
    return value


def add_list(commands: Subparsers) -> None:
    p = commands.add_parser(
        "list",
        help="attempts to deliver alerts, oldest first",
        description="Print delivery attempts from the history, the newest --limit of those "
        "that match, oldest first: time, alert id, revision, receiver, attempt, outcome, "
        "HTTP status and error.",
    )
    p.add_argument("--alert", metavar="ID", help="one alert's attempts")
    p.add_argument("--receiver", metavar="NAME", help="one receiver's attempts")
    p.add_argument(
        "--since",
        metavar="DURATION_OR_RFC3339",
        type=parse_since,
        help="attempts since a time (2026-06-17T09:00:00Z) or that long ago (30m, 24h, 7d)",
    )
    p.add_argument(
        "--limit", type=_limit, default=1000, metavar="N", help="at most N (default 1000)"
    )
    p.add_argument(
        "--json", action="store_true", help="one JSON object per line (the attempt's fields)"
    )
    add_setting_flags(p, DELIVERIES)
    p.set_defaults(func=cmd_list)


# `deliveries retry` (re-send what the history shows exhausted) joins here.
def cmd_retry(args: argparse.Namespace) -> int:
    from monitor.cli.notify import cmd_notify

    return cmd_notify(args)


def add_retry(commands: Subparsers) -> None:
    p = commands.add_parser(
        "retry",
        help="send undelivered alerts again",
        description="Read the undelivered topic (consumer group <app id>-notify-retry) and "
        "send each delivery to its receiver again, as `xborder notify` does; what the history "
        "has as delivered is skipped, what fails again goes back to the undelivered topic. "
        "Stops once the topic has been read and nothing is unfinished.",
    )
    p.add_argument(
        "--idle-exit",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="stop once nothing came for this long and nothing is unfinished (default 5)",
    )
    add_setting_flags(p, NOTIFY)
    p.set_defaults(func=cmd_retry, retry=True)


SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (add_list, add_retry)


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "deliveries", help="the delivery history: attempts to send alerts to receivers"
    )
    commands = p.add_subparsers(dest="deliveries_command", required=True)
    for add in SUBCOMMANDS:
        add(commands)
