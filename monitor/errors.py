"""One exception root for everything the monitor refuses to run with.

Errors carry where they came from (a file and line for configuration, a path
for databases) so the message alone tells a user what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BrokerUnavailable",
    "ConfigError",
    "ConfigErrors",
    "GeoIPDatabaseError",
    "KafkaAccessDenied",
    "Location",
    "ServiceUnavailable",
    "XborderError",
]


class XborderError(Exception):
    """Root of the monitor's own errors."""


@dataclass(frozen=True)
class Location:
    """A place in a configuration file; `line` is 1-based, 0 when unknown."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


class ConfigError(XborderError):
    """A rule, list or configuration file that cannot be used."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class ConfigErrors(XborderError):
    """Every error found in one pass over a set of files."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class ServiceUnavailable(XborderError):
    """A service the command needs could not be reached (exit status 69, EX_UNAVAILABLE)."""


class BrokerUnavailable(ServiceUnavailable):
    """Kafka could not be reached: names the servers tried."""


class KafkaAccessDenied(XborderError):
    """The broker answered and refused the monitor: credentials, mechanism or TLS.

    A configuration error (exit status 2), not an outage: restarting with
    the same settings meets the same refusal.
    """


class GeoIPDatabaseError(XborderError):
    """A GeoIP database that is missing or unreadable; names the path and a remedy."""
