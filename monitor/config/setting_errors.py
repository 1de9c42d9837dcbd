"""Settings errors in words: which variable or flag, what it accepts, what it got."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from monitor.config.yamlfile import token
from monitor.errors import ConfigError

__all__ = ["config_error"]


def _field_at(model: type[BaseModel], loc: tuple[str, ...]) -> FieldInfo | None:
    field = None
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return None
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            model = field.annotation
    return field


def _allowed(field: FieldInfo) -> str | None:
    """What a field accepts, in words; None where pydantic's own message says it better."""
    kind = field.annotation
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(kind))
    if kind is bool:
        return "1 or 0 (true or false)"
    if kind not in (int, float):
        return None
    noun = "a whole number" if kind is int else "a number"
    limits = {
        type(m).__name__.lower(): getattr(m, type(m).__name__.lower())
        for m in field.metadata
        if isinstance(m, Ge | Gt | Le | Lt)
    }
    if limits.keys() == {"ge", "le"}:
        return f"{noun} from {limits['ge']} to {limits['le']}"
    if limits.keys() == {"ge"}:
        return f"{noun} of at least {limits['ge']}"
    if limits.keys() == {"gt"}:
        return f"{noun} above {limits['gt']}"
    return None if limits else noun


def config_error(
    error: ValidationError, name_of: Callable[[tuple[str, ...]], str], model: type[BaseModel]
) -> ConfigError:
    """One line naming each invalid variable (or flag, as `name_of` says) and what it accepts."""
    problems = []
    for e in error.errors():
        loc = tuple(str(part) for part in e["loc"])
        field = _field_at(model, loc) if loc else None
        what = name_of(loc) if loc else "settings"
        if e["type"] == "value_error" and not loc:
            # A check across settings: its message names each variable, and
            # the input (every setting) is no one value to quote.
            problems.append(str(e.get("ctx", {}).get("error", "")))
            continue
        if e["type"] == "value_error":  # our own validators say what they accept
            rule: str | None = str(e.get("ctx", {}).get("error", ""))
        else:
            rule = _allowed(field) if field is not None else None
        msg = e["msg"]
        problem = f"{what} must be {rule}" if rule else f"{what}: {msg[:1].lower()}{msg[1:]}"
        secret = field is not None and SecretStr in get_args(field.annotation)
        problems.append(problem if secret else f"{problem}, got {token(e['input'])}")
    return ConfigError("; ".join(problems))
