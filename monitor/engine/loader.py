"""Load a rule pack directory, validate every file in one pass, compile once.

Layout of a pack directory:

    pack.yaml            version, params, lists, reusable conditions
    detections/*.yaml    one or more rules per file (a mapping, or a list of them)

Every problem found is collected and raised together as `ConfigErrors`, each
naming its file and line.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from monitor.alerts.windows import load_zone, window_start
from monitor.config.disclosures import Disclosures
from monitor.config.yamlfile import (
    LDict,
    LList,
    is_scalar,
    kind_of,
    mapping_at,
    parse_yaml,
    read_config_file,
    strings_at,
    token,
)
from monitor.contract.countries import ISO_ALPHA2
from monitor.engine.conditions import CompileContext, Compiled, Predicate, compile_condition
from monitor.engine.group_config import not_a_zone, pack_zone, rule_grouping
from monitor.engine.model import GROUP_FIELDS, SEVERITIES, Example, Rule, RulePack, parse_duration
from monitor.engine.ruletypes import REGISTRY
from monitor.engine.ruletypes.base import AnyRuleType
from monitor.engine.ruletypes.onward import OnwardRule
from monitor.engine.ruletypes.threshold import ThresholdRule
from monitor.errors import ConfigError, ConfigErrors, Location

__all__ = ["load_pack", "rule_files"]

_KINDS = ("egress", "api_call", "consent")
_RULE_KEYS = {
    "id", "title", "desc", "severity", "legal_ref", "tags", "kinds", "type", "when",
    "first_hop", "params", "group_by", "group_window", "group_time_zone", "examples",
}  # fmt: skip
_PACK_KEYS = {"version", "params", "lists", "conditions"}
_DURATION_PARAMS = ("window", "group_window", "late_allowance", "allowed_lateness")
# The rules' conditions become one function per record kind: past a few MB of
# source, compiling it would stall start-up (about half a second per MB).
MAX_PACK_CHARS = 1_000_000

T = TypeVar("T")


def rule_files(directory: Path) -> list[Path]:
    """The rule files of a pack, in the order they are loaded."""
    return sorted((directory / "detections").glob("*.yaml")) + sorted(
        (directory / "detections").glob("*.yml")
    )


def load_pack(
    directory: Path,
    disclosures: Disclosures,
    overrides: Mapping[str, Any] | None = None,
) -> RulePack:
    """Load, validate and compile the pack in `directory`.

    `overrides` replaces pack params (e.g. `home_region` from the command line).
    """
    pack_file = directory / "pack.yaml"
    if not directory.is_dir():
        raise ConfigError("rules directory not found", Location(str(directory)))
    files = rule_files(directory)
    errors: list[ConfigError] = []
    # Each file is read once, through the checks of read_config_file, for both
    # the version digest and the parse: reading it twice could see two files.
    texts = {pack_file: read_config_file(pack_file, (directory,))}
    for path in files:
        read = _collect(errors, read_config_file, path, (directory,))
        if read is not None:
            texts[path] = read
    digest = hashlib.sha256()
    for path, data in texts.items():
        digest.update(path.name.encode() + b"\0" + data)
    head = parse_yaml(texts[pack_file], str(pack_file))
    if not isinstance(head, LDict):
        where = head.loc() if isinstance(head, LList) else Location(str(pack_file), 1)
        raise ConfigError("pack.yaml must be a mapping", where)
    params, named = _pack_head(head, overrides, errors)
    version = f"{head.get('version', '0')}+{digest.hexdigest()[:12]}"

    ctx = CompileContext(str(pack_file), params, named, disclosures, Compiled(), set())
    for name in named:
        _collect(errors, _compile_named, name, named, ctx)
    rules = _load_rules(files, texts, params, ctx, errors)
    _check_code_size(rules, errors)
    if not files:
        errors.append(ConfigError("no rule files in detections/", Location(str(directory))))
    if errors:
        # A broken named condition is met again by every rule that uses it.
        raise ConfigErrors(list({str(e): e for e in errors}.values()))
    return RulePack(version=version, params=params, rules=tuple(rules), conditions=ctx.compiled)


def _collect(errors: list[ConfigError], fn: Callable[..., T], *args: Any) -> T | None:
    """fn(*args), its ConfigError(s) added to `errors` (and None returned) instead of raised."""
    try:
        return fn(*args)
    except ConfigError as e:
        errors.append(e)
    except ConfigErrors as e:
        errors.extend(e.errors)
    return None


def _pack_head(
    head: LDict, overrides: Mapping[str, Any] | None, errors: list[ConfigError]
) -> tuple[dict[str, Any], LDict]:
    """The params (pack params, overrides, then lists) and the named conditions of pack.yaml."""
    for key in set(head) - _PACK_KEYS:
        errors.append(ConfigError(f"unknown key {token(key)}", head.loc(key)))
    version = head.get("version")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, (str, int, float))
    ):
        errors.append(
            ConfigError(f"'version' must be a string, got {kind_of(version)}", head.loc("version"))
        )
    params = _params(mapping_at(head, "params", errors), errors)
    params.update(overrides or {})
    pack_zone(params, head.loc("params"), errors)
    lists = mapping_at(head, "lists", errors)
    for name, values in lists.items():
        if not isinstance(values, LList):
            errors.append(
                ConfigError(
                    f"list {token(name)} must be a list, got {kind_of(values)}", lists.loc(name)
                )
            )
            continue
        for i, value in enumerate(values):
            if not is_scalar(value):
                errors.append(
                    ConfigError(
                        f"list {token(name)} holds {kind_of(value)}; lists hold values",
                        values.loc(i),
                    )
                )
        params.setdefault(name, values)
    return params, mapping_at(head, "conditions", errors)


def _params(raw: LDict, errors: list[ConfigError]) -> dict[str, Any]:
    """Params as rules read them: durations in milliseconds, the home region checked."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _DURATION_PARAMS:
            ms = parse_duration(value)
            if ms is None:
                errors.append(
                    ConfigError(f"{name}: not a duration like 30d, 1h, 10m", raw.loc(name))
                )
            value = ms
        elif name == "home_region" and (not isinstance(value, str) or value not in ISO_ALPHA2):
            errors.append(
                ConfigError(
                    f"home_region must be an ISO 3166-1 alpha-2 code, got {token(value)}",
                    raw.loc(name),
                )
            )
        elif name == "time_zone" and load_zone(value) is None:
            errors.append(ConfigError(not_a_zone(name, value), raw.loc(name)))
        out[name] = value
    return out


def _compile_named(name: str, named: LDict, ctx: CompileContext) -> Predicate:
    node = LDict({"condition": name})
    node.file, node.line, node.key_lines = named.file, named.key_lines.get(name, 0), {}
    return compile_condition(node, ctx)


def _load_rules(
    files: list[Path],
    texts: Mapping[Path, bytes],
    params: Mapping[str, Any],
    ctx: CompileContext,
    errors: list[ConfigError],
) -> list[Rule]:
    rules: list[Rule] = []
    seen: dict[str, Location] = {}
    for path in files:
        if path not in texts:
            continue  # its read error is collected already
        try:
            doc = parse_yaml(texts[path], str(path))
        except ConfigError as e:
            errors.append(e)
            continue  # a file that does not parse has no rules
        entries = doc if isinstance(doc, LList) else [doc]
        for index, entry in enumerate(entries):
            where = doc.loc(index) if isinstance(doc, LList) else Location(str(path), 1)
            rule = _collect(errors, _rule, entry, path, params, ctx, where)
            if rule is None:
                continue
            if rule.id in seen:
                errors.append(
                    ConfigError(
                        f"duplicate rule id {token(rule.id)} (first at {seen[rule.id]})",
                        rule.location,
                    )
                )
                continue
            seen[rule.id] = rule.location
            rules.append(rule)
    return rules


def _check_code_size(rules: list[Rule], errors: list[ConfigError]) -> None:
    total = 0
    for rule in rules:
        total += len(rule.when.src)
        if total > MAX_PACK_CHARS:
            errors.append(
                ConfigError(
                    f"with this rule, the conditions pass {MAX_PACK_CHARS} characters of code",
                    rule.location,
                )
            )
            return


def _rule(
    entry: Any, path: Path, pack_params: Mapping[str, Any], pctx: CompileContext, where: Location
) -> Rule:
    file = str(path)
    if not isinstance(entry, LDict):
        raise ConfigErrors([ConfigError(f"a rule must be a mapping, got {kind_of(entry)}", where)])
    errors: list[ConfigError] = []

    def need(key: str) -> str | None:
        if key not in entry:
            errors.append(ConfigError(f"rule needs '{key}'", entry.loc()))
            return None
        if not isinstance(entry[key], str):
            errors.append(
                ConfigError(f"'{key}' must be a string, got {kind_of(entry[key])}", entry.loc(key))
            )
            return None
        return str(entry[key])

    for key in set(entry) - _RULE_KEYS:
        errors.append(ConfigError(f"unknown key {token(key)}", entry.loc(key)))
    rule_id = need("id") or "?"
    title = need("title") or ""
    severity = need("severity") or "low"
    if severity not in SEVERITIES:
        errors.append(ConfigError(f"severity must be one of {SEVERITIES}", entry.loc("severity")))
    legal_ref = need("legal_ref") or ""
    desc = entry.get("desc", "")
    if not isinstance(desc, str):
        errors.append(
            ConfigError(f"'desc' must be a string, got {kind_of(desc)}", entry.loc("desc"))
        )
    tags = strings_at(entry, "tags", errors) or ()
    kinds = strings_at(entry, "kinds", errors) or ("egress", "api_call")
    for k in kinds:
        if k not in _KINDS:
            errors.append(ConfigError(f"unknown kind {token(k)}", entry.loc("kinds")))

    rule_params = mapping_at(entry, "params", errors)
    params = {**pack_params, **_params(rule_params, errors)}
    # Named conditions were compiled once with the pack's params; rules share them.
    ctx = CompileContext(file, params, pctx.named, pctx.disclosures, pctx.compiled, set())

    when: Predicate = ctx.compiled.predicate("False")
    if "when" not in entry:
        errors.append(ConfigError("rule needs 'when'", entry.loc()))
    else:
        when = _collect(errors, compile_condition, entry["when"], ctx, entry.loc("when")) or when

    grouping = rule_grouping(entry, pack_params, errors)
    rtype = _rule_type(entry, rule_id, params, ctx, errors)
    examples = _examples(entry, errors)
    if errors:
        raise ConfigErrors(errors)
    if isinstance(rtype, ThresholdRule):
        # Its hot totals are kept per grouping window: the alert's.
        rtype.group_start = functools.partial(
            window_start, length=grouping.window_ms, zone=grouping.zone
        )
    return Rule(
        id=rule_id,
        title=title,
        severity=severity,
        legal_ref=legal_ref,
        desc=str(desc).strip(),
        tags=tags,
        kinds=frozenset(kinds),
        when=when,
        type=rtype,
        group_by=grouping.by,
        group_window_ms=grouping.window_ms,
        group_zone=grouping.zone,
        params={k: v for k, v in params.items() if k in rule_params},
        examples=examples,
        location=entry.loc(),
    )


def _rule_type(
    entry: LDict,
    rule_id: str,
    params: Mapping[str, Any],
    ctx: CompileContext,
    errors: list[ConfigError],
) -> AnyRuleType | None:
    """The stateful type a rule names (None for `match`, or when it cannot be made)."""
    type_name = entry.get("type", "match")
    if type_name == "match":
        if "first_hop" in entry:
            errors.append(
                ConfigError("'first_hop' belongs to rules of type onward", entry.loc("first_hop"))
            )
        return None
    cls = REGISTRY.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        known = ", ".join(["match", *sorted(REGISTRY)])
        errors.append(
            ConfigError(f"unknown rule type {token(type_name)}; known: {known}", entry.loc("type"))
        )
        return None
    missing = [p for p in cls.required if p not in params]
    for p in missing:
        errors.append(ConfigError(f"type {type_name} needs param {p!r}", entry.loc("params")))
    if missing or errors:
        return None
    return _collect(errors, _make_type, cls, rule_id, params, entry, ctx)


def _make_type(
    cls: type[AnyRuleType],
    rule_id: str,
    params: Mapping[str, Any],
    entry: LDict,
    ctx: CompileContext,
) -> AnyRuleType:
    """The rule type built from resolved params; ConfigError(s) when they do not fit it."""
    home = str(params.get("home_region", "KR"))
    loc = entry.loc("params")
    own = entry.get("params")

    def at(name: str) -> Location:
        """The line of the rule's own param, else of its `params` (the value came from the pack)."""
        return own.loc(name) if isinstance(own, LDict) and name in own else loc

    resolved = {k: ctx.ref(v, at(k)) for k, v in params.items()}
    for name in _DURATION_PARAMS:
        value = resolved.get(name)
        # Pack lists join the params too: a list named like a duration is no duration.
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{name}: not a duration, got {kind_of(value)}", at(name))
    if cls is OnwardRule:
        if "first_hop" not in entry:
            raise ConfigError("type onward needs 'first_hop'", entry.loc())
        first = compile_condition(entry["first_hop"], ctx, entry.loc("first_hop"))
        return OnwardRule(rule_id, resolved, home, first)
    if cls.name == "threshold":
        per = resolved.get("per")
        if not isinstance(per, list) or any(p not in GROUP_FIELDS for p in per):
            raise ConfigError(f"per: a list of {GROUP_FIELDS}", at("per"))
        if resolved.get("sum") not in ("records", "bytes"):
            raise ConfigError("sum: records or bytes", at("sum"))
        at_least = resolved.get("at_least")
        if isinstance(at_least, bool) or not isinstance(at_least, int) or at_least <= 0:
            raise ConfigError(
                f"at_least: a whole number above 0, got {token(at_least)}", at("at_least")
            )
    return cls(rule_id, resolved, home)


def _examples(entry: LDict, errors: list[ConfigError]) -> tuple[Example, ...]:
    raw = entry.get("examples")
    if raw is None:
        errors.append(
            ConfigError("rule needs 'examples' (records that must and must not fire)", entry.loc())
        )
        return ()
    if not isinstance(raw, LList):
        errors.append(
            ConfigError(f"'examples' must be a list, got {kind_of(raw)}", entry.loc("examples"))
        )
        return ()
    out: list[Example] = []
    for i, ex in enumerate(raw):
        loc = raw.loc(i)
        if (
            not isinstance(ex, LDict)
            or not isinstance(ex.get("records"), list)
            or "fires" not in ex
        ):
            errors.append(ConfigError("an example needs 'records' (a list) and 'fires'", loc))
            continue
        example = _collect(errors, _example, ex, i, loc)
        if example is not None:
            out.append(example)
    if not any(e.fires for e in out) or not any(not e.fires for e in out):
        errors.append(
            ConfigError(
                "examples need at least one that fires and one that does not", entry.loc("examples")
            )
        )
    return tuple(out)


def _example(ex: LDict, index: int, loc: Location) -> Example:
    fires, count, name = ex["fires"], ex.get("count"), ex.get("name", f"example {index + 1}")
    if not isinstance(fires, bool):
        raise ConfigError(f"'fires' must be true or false, got {kind_of(fires)}", ex.loc("fires"))
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ConfigError(f"'count' must be a whole number, got {token(count)}", ex.loc("count"))
    if not isinstance(name, str):
        raise ConfigError(f"'name' must be a string, got {kind_of(name)}", ex.loc("name"))
    errors: list[ConfigError] = []
    geoip = mapping_at(ex, "geoip", errors)
    for ip, country in geoip.items():
        if not isinstance(country, str):
            errors.append(
                ConfigError(f"geoip: {token(ip)} must map to a country code", geoip.loc(ip))
            )
    if errors:
        raise ConfigErrors(errors)
    return Example(
        name=name,
        records=tuple(ex["records"]),
        fires=fires,
        count=count,
        geoip=dict(geoip),
        location=loc,
    )
