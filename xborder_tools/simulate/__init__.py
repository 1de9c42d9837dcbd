"""Synthetic telemetry of several platforms: mostly lawful traffic, with injected violations."""

from xborder_tools.simulate.generator import *  # noqa: F403
from xborder_tools.simulate.generator import __all__ as __all__
