"""Compose's variable interpolation, so a compose file can be checked as Compose would load it.

Compose interpolates before it validates: `${VAR:?message}` in a typed field
is only a string in the file. This follows the Compose Specification
("Interpolation"): `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
`${VAR:?error}`, `${VAR?error}`, `${VAR:+replacement}`, `${VAR+replacement}`
and `$$` for a literal dollar, in values (not keys). Nested expressions in a
default are not supported (raise).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MissingVariable", "interpolate", "required_variables"]

_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[_a-zA-Z][_a-zA-Z0-9]*))"
)
_BRACED = re.compile(r"(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


class MissingVariable(Exception):
    """A `${VAR:?message}` (or `?`) whose variable is unset (or empty)."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """`value` (a loaded compose document or any part of it) with its variables replaced."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, str):
        return _TOKEN.sub(lambda m: _substitute(m, env), value)
    return value


def required_variables(value: Any) -> set[str]:
    """Names the document requires (`${VAR:?...}` or `${VAR?...}`)."""
    if isinstance(value, dict):
        return set().union(*(required_variables(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(required_variables(v) for v in value))
    found = set()
    if isinstance(value, str):
        for m in _TOKEN.finditer(value):
            braced = _BRACED.fullmatch(m["braced"] or "")
            if braced and (braced["op"] or "").endswith("?"):
                found.add(braced["name"])
    return found


def _substitute(m: re.Match[str], env: Mapping[str, str]) -> str:
    if m["escaped"]:
        return "$"
    if m["named"]:
        return env.get(m["named"], "")
    braced = _BRACED.fullmatch(m["braced"])
    if braced is None:
        raise ValueError(f"invalid interpolation: {m.group(0)}")
    name, op, arg = braced["name"], braced["op"], braced["arg"] or ""
    if "$" in arg:
        raise ValueError(f"nested interpolation is not supported here: {m.group(0)}")
    value = env.get(name)
    # With a colon, empty counts as unset.
    unset = value is None or (op is not None and op.startswith(":") and value == "")
    match (op or "").lstrip(":"):
        case "":
            return value or ""
        case "-":
            return arg if unset else str(value)
        case "?":
            if unset:
                raise MissingVariable(f"{name}: {arg}")
            return str(value)
        case _:  # "+"
            return "" if unset else arg
