"""Synthetic telemetry of several platforms: mostly lawful traffic, with injected violations.

`generate_items(cfg)` is the stream (generator.py); records.py makes the lawful
records, episodes.py the violations, corruptions.py the invalid ones. world.py
reads what the platforms are from the monitor's configuration; traffic.py holds
what no configuration says. formats.py writes the stream in the other formats
replay reads. sinks.py and cli.py are `xborder simulate`.
"""

from xborder_tools.simulate.formats import CARRIES, FormatWriter
from xborder_tools.simulate.generator import generate, generate_items
from xborder_tools.simulate.model import SimConfig, SimItem
from xborder_tools.simulate.sinks import FileSink, KafkaSink, SimStats
from xborder_tools.simulate.traffic import BUILTIN_NETWORKS, POOL_COUNTRIES
from xborder_tools.simulate.violations import ALSO_FIRES, INVALID_REASONS, RULE_OF, VIOLATIONS
from xborder_tools.simulate.world import World, load_world, networks_from_geoip

__all__ = [
    "ALSO_FIRES",
    "BUILTIN_NETWORKS",
    "CARRIES",
    "INVALID_REASONS",
    "POOL_COUNTRIES",
    "RULE_OF",
    "VIOLATIONS",
    "FileSink",
    "FormatWriter",
    "KafkaSink",
    "SimConfig",
    "SimItem",
    "SimStats",
    "World",
    "generate",
    "generate_items",
    "load_world",
    "networks_from_geoip",
]
