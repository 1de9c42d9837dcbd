"""A delivery file's `receivers:`: names, URLs, formats, limits, and signing secrets.

A secret is never in the file. `secret_env` names the environment variable
holding it, `secret_file` a file (read with the configuration's own limits);
either is read at load, and an error names the variable or the path, never
what it holds. A secret in Standard Webhooks' form (`whsec_` and base64) is
decoded; any other text is the key as it is.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from monitor.config.yamlfile import LDict, LList, kind_of, mapping_at, read_config_file, token
from monitor.delivery.model import FORMATS, SEVERITIES, Format, Receiver
from monitor.engine.model import parse_duration
from monitor.errors import ConfigError, Location

__all__ = ["MIN_SECRET_BYTES", "ReceiverReader"]

# Standard Webhooks asks for 24 to 64 bytes; 16 is the floor the subject key has too.
MIN_SECRET_BYTES: Final = 16
# Names reach metric labels and the history's rows: kept to a plain alphabet.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Upper case alone: a secret pasted in by mistake (mixed-case base64, lower-case
# hex) is refused without being named in the error.
_ENV_VAR = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
_FORMATS: Final[Mapping[str, Format]] = {f: f for f in FORMATS}
# What an entry leaves out; the model's defaults are the one place they are set.
_DEFAULT: Final = Receiver(name="", url="")
_MAX_ATTEMPTS: Final = 100
_MAX_BREAKER_FAILURES: Final = 1000
_KEYS: Final = frozenset(
    {
        "name",
        "url",
        "format",
        "min_severity",
        "secret_env",
        "secret_file",
        "tls_verify",
        "ca_file",
        "timeout",
        "max_attempts",
        "backoff",
        "breaker",
    }
)


class ReceiverReader:
    """Reads `receivers:` entries, collecting every error in `errors`.

    `base`: the folder relative file paths start from. `resolve`: read the
    secrets (from `env` or their files) and check the files named exist.
    """

    def __init__(self, base: Path, env: Mapping[str, str], resolve: bool) -> None:
        self.base = base
        self.env = env
        self.resolve = resolve
        self.errors: list[ConfigError] = []
        self.names: set[str] = set()  # every receiver named, valid or not

    def error(self, message: str, loc: Location) -> None:
        self.errors.append(ConfigError(message, loc))

    def unknown_keys(self, node: LDict, allowed: frozenset[str], what: str) -> None:
        unknown = sorted(set(node) - allowed)
        if unknown:
            self.error(f"{what}: unknown keys {token(unknown)}", node.loc(unknown[0]))

    def receivers(self, doc: LDict) -> dict[str, Receiver]:
        entries = doc.get("receivers")
        if entries is None:
            return {}
        if not isinstance(entries, LList):
            self.error(f"'receivers' must be a list, got {kind_of(entries)}", doc.loc("receivers"))
            return {}
        out: dict[str, Receiver] = {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, LDict):
                self.error(f"a receiver must be a mapping, got {kind_of(entry)}", entries.loc(i))
                continue
            receiver = self.receiver(entry)
            if receiver is not None:
                out[receiver.name] = receiver
        return out

    def receiver(self, entry: LDict) -> Receiver | None:
        before = len(self.errors)
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            self.error(
                "a receiver needs a 'name' of letters, digits, '.', '_' or '-' (at most 64)",
                entry.loc("name"),
            )
            name = None
        elif name in self.names:
            self.error(f"receiver {token(name)} is defined twice", entry.loc("name"))
        else:
            self.names.add(name)
        what = f"receiver {token(name)}" if name else "receiver"
        if "secret" in entry:
            self.error(
                f"{what}: an inline 'secret' is not allowed; name the environment variable "
                "(secret_env) or the file (secret_file) that holds it",
                entry.loc("secret"),
            )
        self.unknown_keys(entry, _KEYS | {"secret"}, what)
        backoff = self.section(entry, "backoff", frozenset({"initial", "max"}), what)
        breaker = self.section(entry, "breaker", frozenset({"failures", "reset"}), what)
        receiver = Receiver(
            name=name or "",
            url=self.url(entry, what),
            format=_FORMATS[self.choice(entry, "format", FORMATS, _DEFAULT.format, what)],
            min_severity=self.choice(
                entry, "min_severity", SEVERITIES, _DEFAULT.min_severity, what
            ),
            secret=self.secret(entry, what),
            tls_verify=self.flag(entry, "tls_verify", _DEFAULT.tls_verify, what),
            ca_file=self.file(entry, "ca_file", what),
            timeout_s=self.seconds(entry, "timeout", _DEFAULT.timeout_s, what),
            max_attempts=self.count(
                entry, "max_attempts", _DEFAULT.max_attempts, _MAX_ATTEMPTS, what
            ),
            backoff_initial_s=self.seconds(backoff, "initial", _DEFAULT.backoff_initial_s, what),
            backoff_max_s=self.seconds(backoff, "max", _DEFAULT.backoff_max_s, what),
            breaker_failures=self.count(
                breaker, "failures", _DEFAULT.breaker_failures, _MAX_BREAKER_FAILURES, what
            ),
            breaker_reset_s=self.seconds(breaker, "reset", _DEFAULT.breaker_reset_s, what),
        )
        if receiver.backoff_initial_s > receiver.backoff_max_s:
            self.error(f"{what}: backoff initial is longer than its max", backoff.loc("initial"))
        return receiver if name and len(self.errors) == before else None

    def section(self, entry: LDict, key: str, keys: frozenset[str], what: str) -> LDict:
        """A nested mapping of settings (`backoff`, `breaker`); empty when absent."""
        node = mapping_at(entry, key, self.errors)
        self.unknown_keys(node, keys, f"{what} {key}")
        return node

    def url(self, entry: LDict, what: str) -> str:
        raw = entry.get("url")
        loc = entry.loc("url")
        if not isinstance(raw, str) or not raw:
            self.error(f"{what} needs a 'url'", loc)
            return ""
        # Never echoed: a webhook URL can carry a token in its path or query.
        try:
            parts = urlsplit(raw)
            _ = parts.port  # raises on a port that is not a number in range
        except ValueError:
            self.error(f"{what}: url is not a valid URL", loc)
            return ""
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.error(f"{what}: url must be an http:// or https:// URL with a host", loc)
        elif parts.username is not None or parts.password is not None:
            self.error(
                f"{what}: url must not carry a user or password (the receiver is "
                "authenticated by its signing secret)",
                loc,
            )
        return raw

    def choice(
        self, entry: LDict, key: str, allowed: Sequence[str], default: str, what: str
    ) -> str:
        value = entry.get(key, default)
        if value not in allowed:
            self.error(
                f"{what}: {key} must be one of {', '.join(allowed)}, got {token(value)}",
                entry.loc(key),
            )
            return default
        return str(value)

    def flag(self, entry: LDict, key: str, default: bool, what: str) -> bool:
        value = entry.get(key, default)
        if not isinstance(value, bool):
            self.error(f"{what}: {key} must be true or false, got {kind_of(value)}", entry.loc(key))
            return default
        return value

    def seconds(self, node: LDict, key: str, default: float, what: str) -> float:
        if key not in node:
            return default
        ms = parse_duration(node[key])
        if ms is None:
            self.error(
                f"{what}: {key} must be a duration such as 500ms, 30s or 5m, "
                f"got {token(node[key])}",
                node.loc(key),
            )
            return default
        return ms / 1000

    def count(self, node: LDict, key: str, default: int, most: int, what: str) -> int:
        value = node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            self.error(
                f"{what}: {key} must be a whole number from 1 to {most}, got {token(value)}",
                node.loc(key),
            )
            return default
        return value

    def path(self, entry: LDict, key: str, what: str) -> Path | None:
        value = entry.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.error(f"{what}: {key} must be a file path, got {kind_of(value)}", entry.loc(key))
            return None
        # As Alertmanager does: relative to the folder of the file naming it.
        return self.base / value

    def file(self, entry: LDict, key: str, what: str) -> str | None:
        path = self.path(entry, key, what)
        if path is None:
            return None
        if self.resolve and not (path.is_file() and os.access(path, os.R_OK)):
            self.error(f"{what}: {key} {path} is not a readable file", entry.loc(key))
        return str(path)

    def secret(self, entry: LDict, what: str) -> bytes | None:
        if "secret_env" in entry and "secret_file" in entry:
            self.error(f"{what}: set secret_env or secret_file, not both", entry.loc("secret_file"))
            return None
        if "secret_file" in entry:
            return self.secret_from_file(entry, what)
        if "secret_env" not in entry:
            return None  # deliveries to it go unsigned
        variable = entry["secret_env"]
        loc = entry.loc("secret_env")
        if not isinstance(variable, str) or not _ENV_VAR.fullmatch(variable):
            self.error(
                f"{what}: secret_env must name an environment variable "
                "(upper-case letters, digits and _)",
                loc,
            )
            return None
        if not self.resolve:
            return None
        value = self.env.get(variable)
        if not value:
            self.error(f"{what}: the environment variable {variable} (secret_env) is not set", loc)
            return None
        return self.key(value.strip().encode(), f"the environment variable {variable}", what, loc)

    def secret_from_file(self, entry: LDict, what: str) -> bytes | None:
        path = self.path(entry, "secret_file", what)
        loc = entry.loc("secret_file")
        if path is None or not self.resolve:
            return None
        try:
            data = read_config_file(path, [path.parent])
        except ConfigError as e:
            # e.message says what is wrong with the file, never what it holds.
            self.error(f"{what}: secret_file {path}: {e.message}", loc)
            return None
        return self.key(data.strip(), f"the file {path}", what, loc)

    def key(self, raw: bytes, where: str, what: str, loc: Location) -> bytes | None:
        """The HMAC key: Standard Webhooks' `whsec_<base64>` decoded, other text as it is."""
        if raw.startswith(b"whsec_"):
            try:
                raw = base64.b64decode(raw[len(b"whsec_") :], validate=True)
            except binascii.Error:
                self.error(f"{what}: the secret in {where} is not base64 after whsec_", loc)
                return None
        if len(raw) < MIN_SECRET_BYTES:
            self.error(
                f"{what}: the secret in {where} is shorter than {MIN_SECRET_BYTES} bytes", loc
            )
            return None
        return raw
