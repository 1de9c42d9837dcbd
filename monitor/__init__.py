"""xborder-monitor: streaming compliance monitor for cross-border transfers of personal data."""

__version__ = "0.1.0"
