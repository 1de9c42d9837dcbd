"""The `xborder` command line."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from monitor import __version__
from monitor.cli.flags import (
    CONFIG,
    REPLAY,
    RULES_CHECK,
    WORKER,
    add_setting_flags,
    settings_from,
)
from monitor.contract.formats import FORMATS, FormatOptions
from monitor.errors import ConfigError, ConfigErrors, ServiceUnavailable, XborderError

if TYPE_CHECKING:
    from monitor.config.settings import Settings
    from monitor.engine.model import RulePack

__all__ = ["build_parser", "main", "settings_from"]

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE: a service it needs is not there
# Replay: some input file could not be read to its end; the rest was replayed.
EXIT_UNREADABLE = 1


def _baseline_pack(settings: Settings, rules_dir: Path) -> RulePack:
    """The pack to compare against: its own folder, and its own configuration unless named.

    Disclosures and endpoints given explicitly (flags or XBORDER_*) apply to
    both packs; otherwise each pack reads the `config/` beside its rules.
    """
    from monitor.config.runtime import key_subjects, load_config
    from monitor.config.subject_key import random_key

    if not rules_dir.is_dir():
        raise XborderError(f"baseline rules folder not found: {rules_dir}")
    pack, _, _ = load_config(settings.override({"rules_dir": rules_dir}))
    key_subjects(pack, random_key())
    return pack


def _format_options(args: argparse.Namespace) -> FormatOptions:
    """What the replay flags say that a foreign format does not; refused here when invalid.

    A bad value would otherwise dead-letter every record of the file, one by one.
    """
    from monitor.contract.countries import ISO_ALPHA2
    from monitor.contract.schemas import LABEL_PATTERN, PLATFORM_PATTERN

    if args.platform is not None and PLATFORM_PATTERN.fullmatch(args.platform) is None:
        raise XborderError(
            f"--platform {args.platform!r}: not a platform name ([a-z0-9][a-z0-9_.-]{{0,63}})"
        )
    if args.subject_region is not None and args.subject_region not in ISO_ALPHA2:
        raise XborderError(
            f"--subject-region {args.subject_region!r}: not an ISO 3166-1 alpha-2 code"
        )
    for label in args.data_category:
        if LABEL_PATTERN.fullmatch(label) is None:
            raise XborderError(f"--data-category {label!r}: not a taxonomy label")
    return FormatOptions(
        platform=args.platform,
        subject_region=args.subject_region,
        data_categories=tuple(args.data_category),
    )


def cmd_replay(args: argparse.Namespace) -> int:
    from monitor.config.runtime import load_runtime
    from monitor.replay.runner import replay

    missing = [f for f in args.files if not f.is_file()]
    if missing:
        raise XborderError(f"input file not found: {', '.join(map(str, missing))}")
    settings = settings_from(args)
    runtime = load_runtime(settings)
    args.alerts_out.parent.mkdir(parents=True, exist_ok=True)
    args.dead_letters_out.parent.mkdir(parents=True, exist_ok=True)
    skew_ms = int(runtime.settings.max_clock_skew * 1000)
    baseline = _baseline_pack(settings, args.baseline_rules) if args.baseline_rules else None
    with args.alerts_out.open("wb") as alerts, args.dead_letters_out.open("wb") as dead:
        summary = replay(
            args.files,
            runtime.pack,
            runtime.resolver(),
            alerts,
            dead,
            max_skew_ms=skew_ms,
            mask_dead_letters=settings.dead_letter_mask,
            baseline=baseline,
            input_format=args.format,
            format_options=_format_options(args),
            services=runtime.services,
        )
    runtime.close()
    print(summary.render())
    print(f"alerts written to {args.alerts_out}, dead letters to {args.dead_letters_out}")
    if summary.backtest is not None:
        args.backtest_out.parent.mkdir(parents=True, exist_ok=True)
        args.backtest_out.write_bytes(
            orjson.dumps(summary.backtest.to_json(), option=orjson.OPT_INDENT_2) + b"\n"
        )
        print(summary.backtest.render())
        print(f"back-test written to {args.backtest_out}")
    for problem in summary.read_errors:
        print(f"xborder: {problem}", file=sys.stderr)
    if summary.read_errors:
        print(
            "xborder: input not read to its end; the output holds everything read before "
            "each break (the line a break cut short, as far as it went)",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    return 0


def cmd_rules_check(args: argparse.Namespace) -> int:
    from monitor.config.runtime import load_config, load_delivery_config, load_service_registry

    settings = settings_from(args)
    # Each is checked whatever the others hold, so one run names every error.
    failed: list[ConfigError | ConfigErrors] = []
    try:
        pack, disclosures, endpoints = load_config(settings)
    except (ConfigError, ConfigErrors) as e:
        failed.append(e)
    rule_ids = None if failed else pack.by_id
    try:
        services = load_service_registry(settings)
    except (ConfigError, ConfigErrors) as e:
        failed.append(e)
    try:
        delivery = load_delivery_config(settings, resolve=not args.skip_secrets, rule_ids=rule_ids)
    except (ConfigError, ConfigErrors) as e:
        failed.append(e)
    if len(failed) == 1:
        raise failed[0]
    if failed:
        raise ConfigErrors(
            [err for e in failed for err in (e.errors if isinstance(e, ConfigErrors) else [e])]
        )
    print(
        f"rule pack {pack.version}: {len(pack.rules)} rules, "
        f"{len(disclosures.by_platform)} platforms disclosed, "
        f"{len(endpoints.hosts) + len(endpoints.suffixes)} endpoints, "
        f"{len(services.entries)} services: OK"
    )
    if delivery.source is None:
        print(f"no delivery configuration ({settings.delivery_config_path} absent): OK")
    else:
        checked = "" if args.skip_secrets else ", secrets present"
        print(
            f"delivery {delivery.source}: {len(delivery.receivers)} receivers, "
            f"{delivery.route_count()} routes{checked}: OK"
        )
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    from monitor.config.runtime import load_config
    from monitor.detect.examples import run_examples

    pack, _, endpoints = load_config(settings_from(args))
    failed = 0
    total = 0
    for result in run_examples(pack, endpoints):
        total += 1
        mark = "ok  " if result.ok else "FAIL"
        if not result.ok:
            failed += 1
        print(f"{mark} {result.rule.id}: {result.example.name} ({result.detail})")
        if not result.ok:
            print(f"     at {result.example.location}")
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_worker(args: argparse.Namespace) -> int:
    from agents.worker import run_worker

    return run_worker(settings_from(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xborder",
        description="Streaming compliance monitor for cross-border transfers of personal data.",
    )
    parser.add_argument("--version", action="version", version=f"xborder {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "replay",
        help="run the detection core over telemetry files",
        description="Run the detection core over telemetry files (.gz read compressed): "
        "telemetry-v1 JSON Lines, OCSF, AWS VPC flow logs or Zeek conn.log; write every "
        "alert and every dead letter.",
        epilog="Exit status: 0 when every file was read to its end, whatever it held; "
        "1 when a file could not be read to its end (a truncated or corrupt .gz, a read "
        "error): the other files and everything before the break are still replayed and "
        "written, and each such file is named with where it broke; 2 when nothing could "
        "be replayed (a missing file, invalid rules or configuration, an unreadable GeoIP "
        "database).",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="the format of every FILE (default: detected per file from its first non-empty "
        "line; telemetry-v1 JSON Lines when nothing else fits)",
    )
    p.add_argument(
        "--platform",
        metavar="NAME",
        help="the monitored platform of records from ocsf, vpc-flow and zeek-conn files, "
        "which do not name it, where the service registry (--services) does not either "
        "(without it their records are dead letters, missing_field:platform)",
    )
    p.add_argument(
        "--subject-region",
        metavar="CODE",
        help="for those formats: where the data subjects of every flow live (ISO alpha-2), "
        "where the service registry does not say",
    )
    p.add_argument(
        "--data-category",
        action="append",
        default=[],
        metavar="LABEL",
        help="for those formats: a data category every flow carries (repeatable); without "
        "one, flows are not personal data and no rule on personal data fires",
    )
    p.add_argument("--alerts-out", type=Path, default=Path("alerts.jsonl"))
    p.add_argument("--dead-letters-out", type=Path, default=Path("dead-letters.jsonl"))
    p.add_argument(
        "--baseline-rules",
        type=Path,
        metavar="DIR",
        help="back-test: also run this rule pack over the same input and report the alerts "
        "the --rules pack adds, removes and changes against it, by alert id",
    )
    p.add_argument(
        "--backtest-out",
        type=Path,
        default=Path("backtest.json"),
        help="where the back-test report goes as JSON (default: backtest.json)",
    )
    add_setting_flags(p, REPLAY)
    p.set_defaults(func=cmd_replay)

    rules = sub.add_parser("rules", help="check or test a rule pack").add_subparsers(
        dest="rules_command", required=True
    )
    p = rules.add_parser(
        "check", help="load and validate rules and their configuration, delivery included"
    )
    p.add_argument(
        "--skip-secrets",
        action="store_true",
        help="check the delivery file without reading the secrets and files it names "
        "(where they are absent, as in CI)",
    )
    add_setting_flags(p, RULES_CHECK)
    p.set_defaults(func=cmd_rules_check)
    p = rules.add_parser("test", help="run every rule's examples")
    add_setting_flags(p, CONFIG)
    p.set_defaults(func=cmd_rules_test)

    p = sub.add_parser("worker", help="run the streaming worker (Faust)")
    add_setting_flags(p, WORKER)
    p.set_defaults(func=cmd_worker)

    for register in _extra_commands():
        register(sub)
    return parser


Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _extra_commands() -> list[Register]:
    """Commands defined in their own modules (each has a `register(subparsers)`)."""
    import importlib

    found: list[Register] = []
    for module in (
        "monitor.cli.alerts",
        "monitor.cli.deliveries",
        "monitor.cli.notify",
        "monitor.cli.receive",
        "monitor.cli.tools",
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        found.append(mod.register)
    return found


# The data path allocates many short-lived containers per record; with the
# default threshold (700) the cyclic collector runs every few hundred records
# and took about a sixth of replay time. Records hold no cycles (gc=False
# structs); what does is rare, so collecting ten times less often costs
# little memory.
_GC_THRESHOLD = (50_000, 20, 20)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # The tooling's commands parse their own options (monitor.cli.tools).
    args, rest = parser.parse_known_args(argv)
    if rest and not hasattr(args, "tool"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.tool_argv = rest
    gc.set_threshold(*_GC_THRESHOLD)
    # What it writes (alerts, dead letters with raw records, logs, keys, state)
    # is about people: readable by its owner alone, whatever the caller's umask.
    os.umask(0o077)
    try:
        code: int = args.func(args)
    except ConfigErrors as e:
        print(f"xborder: {len(e.errors)} configuration error(s):", file=sys.stderr)
        for err in e.errors:
            print(f"  {err}", file=sys.stderr)
        return EXIT_USAGE
    except ServiceUnavailable as e:
        print(f"xborder: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except XborderError as e:
        print(f"xborder: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: the reader left, nothing to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
