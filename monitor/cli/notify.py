"""`xborder notify`: deliver alerts from the alerts topic to the configured receivers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

from monitor.cli.flags import NOTIFY, add_setting_flags, settings_from
from monitor.errors import BrokerUnavailable, ConfigError

if TYPE_CHECKING:
    from monitor.config.settings import Settings

__all__ = ["register", "run_notifier"]

log = logging.getLogger("xborder.notify")


def run_notifier(settings: Settings, idle_exit_s: float | None = None, retry: bool = False) -> int:
    from prometheus_client import CollectorRegistry, start_http_server

    from monitor.config.runtime import load_delivery_config
    from monitor.delivery.history import open_history
    from monitor.delivery.metrics import DeliveryMetrics
    from monitor.delivery.notifier import Notifier
    from monitor.kafka_admin import create_topics

    config = load_delivery_config(settings)
    if not config.receivers:
        raise ConfigError(
            f"no receivers in {settings.delivery_config_path}: nothing to deliver to "
            "(see rules/config/delivery.yaml)"
        )
    topics = settings.topics
    # The worker creates the alerts topic too; whichever starts first does.
    create_topics(
        settings.bootstrap,
        [topics.alerts, topics.undelivered],
        settings.partitions,
        replication=settings.replication,
        settings=settings,
    )
    registry = CollectorRegistry()
    metrics = DeliveryMetrics(registry)
    if settings.notify_metrics_port:
        start_http_server(settings.notify_metrics_port, registry=registry)
    history = open_history(settings)
    notifier = Notifier(
        config,
        history,
        bootstrap=settings.bootstrap,
        alerts_topic=topics.alerts,
        undelivered_topic=topics.undelivered,
        group_id=f"{settings.app_id}-notify",
        link=settings.alert_link,
        metrics=metrics,
        settings=settings,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await notifier.run(stop, idle_exit_s=idle_exit_s, retry=retry)

    source = topics.undelivered if retry else topics.alerts
    log.info("notify: %s -> %s", source, ", ".join(config.receivers))
    try:
        asyncio.run(main())
    except OSError as e:
        raise BrokerUnavailable(
            f"cannot reach Kafka at {settings.bootstrap} ({type(e).__name__})"
        ) from None
    finally:
        history.close()
    log.info(
        "notify: stopped; %d delivered or handed on, %d already delivered",
        notifier.sent,
        notifier.skipped,
    )
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    return run_notifier(
        settings_from(args), idle_exit_s=args.idle_exit, retry=getattr(args, "retry", False)
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "notify",
        help="deliver alerts to the receivers of the delivery configuration",
        description="Read the alerts topic (consumer group <app id>-notify) and deliver each "
        "alert revision to the receivers its routes name: signed webhooks, retried with "
        "backoff, a circuit breaker per receiver. Deliveries whose retries run out go to the "
        "undelivered topic (`xborder deliveries retry` sends them again); every attempt is "
        "kept in the delivery history (`xborder deliveries list`).",
    )
    p.add_argument(
        "--idle-exit",
        type=float,
        metavar="SECONDS",
        help="stop once no alert came for this long and nothing is unfinished (replays, tests)",
    )
    add_setting_flags(p, NOTIFY)
    p.set_defaults(func=cmd_notify)
