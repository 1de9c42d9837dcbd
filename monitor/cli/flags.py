"""Command-line flags that override settings: one table, registered from the Settings model.

A flag's help is its field's description with the variable it overrides; its
value is validated by the model, so a bad one names the flag and what it accepts.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from monitor.config.settings import Settings, env_name

__all__ = [
    "CONFIG",
    "DELIVERIES",
    "FLAGS",
    "NOTIFY",
    "REPLAY",
    "RULES_CHECK",
    "WORKER",
    "Flag",
    "add_setting_flags",
    "settings_from",
]


@dataclass(frozen=True)
class Flag:
    option: str
    metavar: str | None = None
    # A flag that turns its setting off describes itself (--no-geoip).
    help: str | None = None


FLAGS: dict[str, Flag] = {
    "rules_dir": Flag("--rules", "DIR"),
    "disclosures": Flag("--disclosures", "YAML"),
    "endpoints": Flag("--endpoints", "YAML"),
    "services": Flag("--services", "YAML"),
    "geoip_country": Flag("--geoip-country", "PATH"),
    "geoip_asn": Flag("--geoip-asn", "PATH"),
    "use_geoip": Flag("--no-geoip", help="resolve with the endpoint registry alone"),
    "home_region": Flag("--home-region", "CODE"),
    "time_zone": Flag("--time-zone", "ZONE"),
    "max_clock_skew": Flag("--max-clock-skew", "SECONDS"),
    "dead_letter_mask": Flag("--mask-dead-letters"),
    "bootstrap": Flag("--bootstrap-servers", "HOST:PORT"),
    "metrics_port": Flag("--metrics-port", "PORT"),
    "app_id": Flag("--app-id", "ID"),
    "input_formats": Flag("--input-formats", "TOPIC=FORMAT,..."),
    "partitions": Flag("--partitions", "N"),
    "state_dir": Flag("--state-dir", "DIR"),
    "processing_guarantee": Flag("--processing-guarantee"),
    "delivery_config": Flag("--delivery-config", "YAML"),
    "delivery_history": Flag("--delivery-history", "PATH"),
    "alert_link": Flag("--alert-link", "URL"),
    "notify_metrics_port": Flag("--notify-metrics-port", "PORT"),
}

# The flags of each command that loads settings.
CONFIG = (
    "rules_dir",
    "disclosures",
    "endpoints",
    "services",
    "geoip_country",
    "geoip_asn",
    "use_geoip",
    "home_region",
    "time_zone",
)
REPLAY = (*CONFIG, "max_clock_skew", "dead_letter_mask")
RULES_CHECK = (*CONFIG, "delivery_config")
DELIVERIES = ("delivery_history",)
NOTIFY = (
    "rules_dir",
    "bootstrap",
    "delivery_config",
    "delivery_history",
    "alert_link",
    "notify_metrics_port",
    "app_id",
)
WORKER = (
    *REPLAY,
    "bootstrap",
    "metrics_port",
    "app_id",
    "partitions",
    "state_dir",
    "processing_guarantee",
    "input_formats",
)


def add_setting_flags(parser: argparse.ArgumentParser, fields: Iterable[str]) -> None:
    group = parser.add_argument_group("settings (each overrides the variable in brackets)")
    for name in fields:
        flag, field = FLAGS[name], Settings.model_fields[name]
        # None: not given, the environment's value stands.
        options: dict[str, Any] = {"dest": name, "default": None, "help": _help(name, flag)}
        if field.annotation is bool and flag.option.startswith("--no-"):
            options.update(action="store_const", const=False)
        elif field.annotation is bool:
            options.update(action=argparse.BooleanOptionalAction)
        elif get_origin(field.annotation) is Literal:
            options.update(choices=get_args(field.annotation))
        else:
            options.update(metavar=flag.metavar)
        group.add_argument(flag.option, **options)


def _help(name: str, flag: Flag) -> str:
    field = Settings.model_fields[name]
    text = flag.help or field.description or ""
    variable = env_name((name,))
    if variable is None:
        return text
    default = field.default
    if isinstance(default, bool):
        shown = "on" if default else "off"
    elif isinstance(default, float):
        shown = f"{default:g}"
    elif default is None or field.default_factory is not None:
        shown = ""  # the description says what stands in
    else:
        shown = str(default)
    where = f"{variable}, default {shown}" if shown else variable
    return f"{text} [{where}]".replace("%", "%%")


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings with the flags given in `args` over them."""
    given = {name: value for name in FLAGS if (value := getattr(args, name, None)) is not None}
    return Settings.from_env().override(given, {name: FLAGS[name].option for name in given})
