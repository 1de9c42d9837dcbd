"""Load a rule pack directory, validate every file in one pass, compile once.

Layout of a pack directory:

    pack.yaml            version, params, lists, reusable conditions
    detections/*.yaml    one or more rules per file (a mapping, or a list of them)

Every problem found is collected and raised together as `ConfigErrors`, each
naming its file and line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.disclosures import Disclosures
from monitor.engine.conditions import CompileContext, Compiled, Predicate, compile_condition
from monitor.engine.model import GROUP_FIELDS, SEVERITIES, Example, Rule, RulePack, parse_duration
from monitor.engine.ruletypes import REGISTRY, OnwardRule, RuleType
from monitor.errors import ConfigError, ConfigErrors, Location
from monitor.yamlfile import LDict, LList, parse_yaml, read_config_file, token

__all__ = ["load_pack"]

_KINDS = ("egress", "api_call", "consent")
_RULE_KEYS = {
    "id", "title", "desc", "severity", "legal_ref", "tags", "kinds", "type", "when",
    "first_hop", "params", "group_by", "group_window", "examples",
}  # fmt: skip
_PACK_KEYS = {"version", "params", "lists", "conditions"}
_DURATION_PARAMS = ("window", "group_window", "late_allowance", "allowed_lateness")


def _rule_files(directory: Path) -> list[Path]:
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
    files = _rule_files(directory)
    errors: list[ConfigError] = []
    # Each file is read once, through the checks of read_config_file, for both
    # the version digest and the parse: reading it twice could see two files.
    texts = {pack_file: read_config_file(pack_file, (directory,))}
    for path in files:
        try:
            texts[path] = read_config_file(path, (directory,))
        except ConfigError as e:
            errors.append(e)
    digest = hashlib.sha256()
    for path, data in texts.items():
        digest.update(path.name.encode() + b"\0" + data)
    head = parse_yaml(texts[pack_file], str(pack_file))
    if not isinstance(head, LDict):
        where = head.loc() if isinstance(head, LList) else Location(str(pack_file), 1)
        raise ConfigError("pack.yaml must be a mapping", where)
    for key in set(head) - _PACK_KEYS:
        errors.append(ConfigError(f"unknown key {token(key)}", head.loc(key)))
    params: dict[str, Any] = dict(head.get("params") or {})
    params.update(overrides or {})
    lists: LDict = head.get("lists") or LDict()
    for name, values in lists.items():
        if not isinstance(values, list):
            errors.append(ConfigError(f"list {token(name)} must be a list", lists.loc(name)))
        params.setdefault(name, values)
    named: LDict = head.get("conditions") or LDict()
    version = f"{head.get('version', '0')}+{digest.hexdigest()[:12]}"

    ctx = CompileContext(str(pack_file), params, named, disclosures, Compiled(), set())
    for name in named:
        try:
            _compile_named(name, named, ctx)
        except ConfigError as e:
            errors.append(e)
        except ConfigErrors as e:
            errors.extend(e.errors)

    rules: list[Rule] = []
    seen: dict[str, Location] = {}
    for path in files:
        if path not in texts:
            continue
        try:
            doc = parse_yaml(texts[path], str(path))
        except ConfigError as e:
            # A file that does not parse has no rules; going on would reuse the
            # previous file's document (or none at all, for the first file).
            errors.append(e)
            continue
        entries = doc if isinstance(doc, LList) else [doc]
        for entry in entries:
            try:
                rule = _rule(entry, path, params, ctx)
            except ConfigErrors as e:
                errors.extend(e.errors)
                continue
            if rule.id in seen:
                errors.append(
                    ConfigError(
                        f"duplicate rule id {rule.id!r} (first at {seen[rule.id]})", rule.location
                    )
                )
                continue
            seen[rule.id] = rule.location
            rules.append(rule)
    if not files:
        errors.append(ConfigError("no rule files in detections/", Location(str(directory))))
    if errors:
        raise ConfigErrors(errors)
    return RulePack(version=version, params=params, rules=tuple(rules), conditions=ctx.compiled)


def _compile_named(name: str, named: LDict, ctx: CompileContext) -> Predicate:
    node = LDict({"condition": name})
    node.file, node.line, node.key_lines = named.file, named.key_lines.get(name, 0), {}
    return compile_condition(node, ctx)


def _rule(entry: Any, path: Path, pack_params: Mapping[str, Any], pctx: CompileContext) -> Rule:
    file = str(path)
    if not isinstance(entry, LDict):
        raise ConfigErrors([ConfigError("a rule must be a mapping", Location(file))])
    errors: list[ConfigError] = []

    def need(key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in entry:
            errors.append(ConfigError(f"rule needs '{key}'", entry.loc()))
            return None
        if not isinstance(entry[key], kind):
            errors.append(ConfigError(f"'{key}' has the wrong type", entry.loc(key)))
            return None
        return entry[key]

    for key in set(entry) - _RULE_KEYS:
        errors.append(ConfigError(f"unknown key {key!r}", entry.loc(key)))
    rule_id = need("id", str) or "?"
    title = need("title", str) or ""
    severity = need("severity", str) or "low"
    if severity not in SEVERITIES:
        errors.append(ConfigError(f"severity must be one of {SEVERITIES}", entry.loc("severity")))
    legal_ref = need("legal_ref", str) or ""
    kinds = tuple(entry.get("kinds") or ("egress", "api_call"))
    for k in kinds:
        if k not in _KINDS:
            errors.append(ConfigError(f"unknown kind {k!r}", entry.loc("kinds")))

    params = dict(pack_params)
    rule_params = entry.get("params") or LDict()
    for name, value in rule_params.items():
        if name in _DURATION_PARAMS:
            ms = parse_duration(value)
            if ms is None:
                errors.append(
                    ConfigError(f"{name}: not a duration like 30d, 1h, 10m", rule_params.loc(name))
                )
            value = ms
        params[name] = value
    # Named conditions were compiled once with the pack's params; rules share them.
    ctx = CompileContext(file, params, pctx.named, pctx.disclosures, pctx.compiled, set())

    when: Predicate = ctx.compiled.predicate("False")
    if "when" not in entry:
        errors.append(ConfigError("rule needs 'when'", entry.loc()))
    else:
        try:
            when = compile_condition(entry["when"], ctx)
        except ConfigError as e:
            errors.append(e)
        except ConfigErrors as e:
            errors.extend(e.errors)

    group_by = tuple(entry.get("group_by") or ("platform", "src_country", "dst_country"))
    for g in group_by:
        if g not in GROUP_FIELDS:
            errors.append(
                ConfigError(
                    f"group_by: unknown field {g!r}; known {GROUP_FIELDS}", entry.loc("group_by")
                )
            )
    group_window = parse_duration(entry.get("group_window", "24h"))
    if group_window is None:
        errors.append(ConfigError("group_window: not a duration", entry.loc("group_window")))

    rtype: RuleType | None = None
    type_name = entry.get("type", "match")
    if type_name != "match":
        cls = REGISTRY.get(type_name)
        if cls is None:
            known = ", ".join(["match", *sorted(REGISTRY)])
            errors.append(
                ConfigError(f"unknown rule type {type_name!r}; known: {known}", entry.loc("type"))
            )
        else:
            missing = [p for p in cls.required if p not in params]
            for p in missing:
                errors.append(
                    ConfigError(f"type {type_name} needs param {p!r}", entry.loc("params"))
                )
            if not missing and not errors:
                rtype = _make_type(cls, rule_id, params, entry, ctx, errors)
    elif "first_hop" in entry:
        errors.append(
            ConfigError("'first_hop' belongs to rules of type onward", entry.loc("first_hop"))
        )

    examples = _examples(entry, file, errors)
    if errors:
        raise ConfigErrors(errors)
    return Rule(
        id=rule_id,
        title=title,
        severity=severity,
        legal_ref=legal_ref,
        desc=str(entry.get("desc", "")).strip(),
        tags=tuple(str(t) for t in entry.get("tags") or ()),
        kinds=frozenset(kinds),
        when=when,
        type=rtype,
        group_by=group_by,
        group_window_ms=group_window or 86_400_000,
        params={k: v for k, v in params.items() if k in rule_params},
        examples=examples,
        location=entry.loc(),
    )


def _make_type(
    cls: type[RuleType],
    rule_id: str,
    params: Mapping[str, Any],
    entry: LDict,
    ctx: CompileContext,
    errors: list[ConfigError],
) -> RuleType | None:
    home = str(params.get("home_region", "KR"))
    resolved = {k: ctx.ref(v, entry.loc("params")) for k, v in params.items()}
    if cls is OnwardRule:
        if "first_hop" not in entry:
            errors.append(ConfigError("type onward needs 'first_hop'", entry.loc()))
            return None
        try:
            first = compile_condition(entry["first_hop"], ctx)
        except ConfigError as e:
            errors.append(e)
            return None
        except ConfigErrors as e:
            errors.extend(e.errors)
            return None
        return OnwardRule(rule_id, resolved, home, first)
    if cls.name == "threshold":
        per = resolved.get("per")
        if not isinstance(per, list) or any(p not in GROUP_FIELDS for p in per):
            errors.append(ConfigError(f"per: a list of {GROUP_FIELDS}", entry.loc("params")))
            return None
        if resolved.get("sum") not in ("records", "bytes"):
            errors.append(ConfigError("sum: records or bytes", entry.loc("params")))
            return None
    return cls(rule_id, resolved, home)


def _examples(entry: LDict, file: str, errors: list[ConfigError]) -> tuple[Example, ...]:
    raw = entry.get("examples")
    if raw is None:
        errors.append(
            ConfigError("rule needs 'examples' (records that must and must not fire)", entry.loc())
        )
        return ()
    out: list[Example] = []
    for i, ex in enumerate(raw if isinstance(raw, LList) else []):
        loc = raw.loc(i)
        if (
            not isinstance(ex, LDict)
            or not isinstance(ex.get("records"), list)
            or "fires" not in ex
        ):
            errors.append(ConfigError("an example needs 'records' (a list) and 'fires'", loc))
            continue
        count = ex.get("count")
        out.append(
            Example(
                name=str(ex.get("name", f"example {i + 1}")),
                records=tuple(ex["records"]),
                fires=bool(ex["fires"]),
                count=int(count) if count is not None else None,
                geoip=dict(ex.get("geoip") or {}),
                location=loc,
            )
        )
    if not any(e.fires for e in out) or not any(not e.fires for e in out):
        errors.append(
            ConfigError(
                "examples need at least one that fires and one that does not", entry.loc("examples")
            )
        )
    return tuple(out)
