"""`xborder receive`: the reference receiver of signed alerts, for trying a route or a case system."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from monitor.errors import XborderError

__all__ = ["register"]


def cmd_receive(args: argparse.Namespace) -> int:
    # Imported here: every other command starts without aiohttp.
    from monitor.delivery.receiver import ReceiverConfig, serve
    from monitor.delivery.signing import load_secret

    if not args.tolerance > 0:
        raise XborderError(
            f"--tolerance must be a positive number of seconds, not {args.tolerance}"
        )
    secret = load_secret(env=args.secret_env, file=args.secret_file)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="xborder receive: %(message)s"
    )
    config = ReceiverConfig(secret=secret, store=args.store, tolerance_s=args.tolerance)

    def ready(url: str) -> None:
        store = f", storing to {args.store}" if args.store else ""
        print(f"xborder receive: listening on {url}{store}", file=sys.stderr, flush=True)

    asyncio.run(serve(config, args.host, args.port, ready))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "receive",
        help="receive signed alert webhooks (the reference receiver)",
        description="Listen for alerts POSTed with Standard Webhooks signatures: verify each, "
        "answer 401 to unsigned, forged, stale or replayed requests, store what is accepted "
        "once per webhook-id, and print one line per alert.",
        epilog="Exit status: 0 when stopped by SIGINT or SIGTERM; 2 when the secret or the "
        "store cannot be read or the address cannot be listened on.",
    )
    p.add_argument("--port", type=int, required=True, help="TCP port; 0 takes a free one")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    secret = p.add_mutually_exclusive_group(required=True)
    secret.add_argument(
        "--secret-file", type=Path, metavar="FILE", help="the shared secret: whsec_<base64> or text"
    )
    secret.add_argument("--secret-env", metavar="VAR", help="the shared secret from this variable")
    p.add_argument("--store", type=Path, metavar="FILE.jsonl", help="append accepted webhooks here")
    p.add_argument(
        "--tolerance",
        type=float,
        default=300.0,
        metavar="S",
        help="how far a timestamp may be from the clock, in seconds (default: 300)",
    )
    p.set_defaults(func=cmd_receive)
