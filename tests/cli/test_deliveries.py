"""`xborder rules check` on the delivery file and `xborder deliveries list`, each in a fresh
process as an operator runs them."""

from __future__ import annotations

import json
import time
from contextlib import closing
from pathlib import Path

import pytest

from monitor.delivery.history import SQLiteHistory
from monitor.delivery.model import Attempt
from tests.cli.test_config_errors import assert_refused, run_cli
from tests.support.hostile_config import edit
from tests.support.pack import copy_pack

SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtY2FzZS1vZmZpY2Vycw=="
WITH_SECRET = {"XBORDER_WEBHOOK_SECRET": SECRET}


# --- rules check ---------------------------------------------------------------------


def test_rules_check_validates_the_bundled_delivery_file(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    result = run_cli("rules", "check", "--rules", str(rules), env=WITH_SECRET)
    assert result.returncode == 0, result.stderr
    delivery = rules / "config" / "delivery.yaml"
    assert f"delivery {delivery}: 1 receivers, 0 routes, secrets present: OK" in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_rules_check_names_file_and_line_of_a_bad_delivery_file(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    delivery = rules / "config" / "delivery.yaml"
    edit(delivery, "  receiver: case-officers", "  receiver: case-officer")
    line = delivery.read_text().splitlines().index("  receiver: case-officer") + 1
    result = run_cli("rules", "check", "--rules", str(rules), env=WITH_SECRET)
    assert_refused(result, f"{delivery}:{line}: unknown receiver 'case-officer'")


def test_rules_check_reports_rule_and_delivery_errors_in_one_run(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    (rules / "detections" / "aaa.yaml").write_text("id: [\n")
    delivery = tmp_path / "delivery.yaml"
    delivery.write_text(
        "receivers:\n"
        "  - {name: a, url: 'https://a.example.org/', secret: inline-secret-1234567890}\n"
        "route:\n"
        "  receiver: a\n"
        "  routes: [{match: {rule_id: pipa.nope}}]\n"
    )
    result = run_cli("rules", "check", "--rules", str(rules), "--delivery-config", str(delivery))
    assert_refused(result, f"{rules / 'detections' / 'aaa.yaml'}:2")
    assert f"{delivery}:2: receiver 'a': an inline 'secret' is not allowed" in result.stderr
    assert "inline-secret" not in result.stderr
    # The pack did not load: a route's rule id cannot be checked against it.
    assert "names no rule" not in result.stderr


def test_rules_check_names_a_missing_secret_and_can_skip_secrets(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    delivery = rules / "config" / "delivery.yaml"
    line = delivery.read_text().splitlines().index("    secret_env: XBORDER_WEBHOOK_SECRET") + 1
    result = run_cli("rules", "check", "--rules", str(rules))
    assert_refused(result, f"{delivery}:{line}: receiver 'case-officers': the environment")
    assert "XBORDER_WEBHOOK_SECRET (secret_env) is not set" in result.stderr
    skipped = run_cli("rules", "check", "--rules", str(rules), "--skip-secrets")
    assert skipped.returncode == 0, skipped.stderr
    assert "1 receivers, 0 routes: OK" in skipped.stdout


def test_rules_check_checks_route_rule_ids_against_the_pack(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    delivery = rules / "config" / "delivery.yaml"
    edit(
        delivery,
        "  receiver: case-officers\n",
        "  receiver: case-officers\n  routes:\n    - match: {rule_id: pipa.nope}\n",
    )
    line = delivery.read_text().splitlines().index("    - match: {rule_id: pipa.nope}") + 1
    result = run_cli("rules", "check", "--rules", str(rules), "--skip-secrets")
    assert_refused(result, f"{delivery}:{line}: match: rule_id names no rule of the pack")


def test_without_a_delivery_file_nothing_is_delivered_unless_one_is_named(
    tmp_path: Path,
) -> None:
    rules = copy_pack(tmp_path)
    (rules / "config" / "delivery.yaml").unlink()
    result = run_cli("rules", "check", "--rules", str(rules))
    assert result.returncode == 0, result.stderr
    assert "no delivery configuration" in result.stdout
    missing = tmp_path / "none.yaml"
    named = run_cli("rules", "check", "--rules", str(rules), "--delivery-config", str(missing))
    assert_refused(named, f"{missing}: file not found")
    by_env = run_cli("rules", "check", "--rules", str(rules), env={
        "XBORDER_DELIVERY_CONFIG": str(missing)
    })  # fmt: skip
    assert_refused(by_env, f"{missing}: file not found")


# --- deliveries list -----------------------------------------------------------------

NOW = int(time.time() * 1000)
ATTEMPTS = [
    Attempt("a" * 32, 1, "case-officers", "pipa.no_legal_basis", 1, "retrying",
            NOW - 7_200_000, 40, 503, "503 Service Unavailable"),
    Attempt("a" * 32, 1, "case-officers", "pipa.no_legal_basis", 2, "delivered",
            NOW - 7_100_000, 100_040, 204),
    Attempt("b" * 32, 2, "siem", "pipa.undisclosed_destination", 1, "rejected",
            NOW - 60_000, 12, 400, "400 Bad Request\x1b[31m\nforged line"),
    Attempt("b" * 32, 2, "case-officers", "pipa.undisclosed_destination", 1, "retrying",
            NOW - 30_000, 9, None, "ConnectError"),
]  # fmt: skip


@pytest.fixture
def history_file(tmp_path: Path) -> Path:
    path = tmp_path / "deliveries.sqlite3"
    with closing(SQLiteHistory(path)) as history:
        for attempt in ATTEMPTS:
            history.record(attempt)
    return path


def rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()]


def test_list_prints_a_table_oldest_first(history_file: Path) -> None:
    result = run_cli("deliveries", "list", "--delivery-history", str(history_file))
    assert result.returncode == 0, result.stderr
    table = rows(result.stdout)
    assert table[0] == ["TIME", "ALERT", "REV", "RECEIVER", "ATTEMPT", "OUTCOME", "STATUS", "ERROR"]
    assert [r[1:7] for r in table[1:]] == [
        ["a" * 32, "1", "case-officers", "1", "retrying", "503"],
        ["a" * 32, "1", "case-officers", "2", "delivered", "204"],
        ["b" * 32, "2", "siem", "1", "rejected", "400"],
        ["b" * 32, "2", "case-officers", "1", "retrying", "-"],
    ]
    assert table[1][7:] == ["503", "Service", "Unavailable"]
    assert table[2][7:] == ["-"]
    assert table[1][0].endswith("Z") and table[1][0][:4].isdigit()
    # A receiver's status line cannot write escape sequences or lines of its own.
    assert "\x1b" not in result.stdout and len(table) == 5


def test_list_filters_by_alert_receiver_and_time(history_file: Path) -> None:
    def listed(*args: str) -> list[tuple[str, str]]:
        result = run_cli("deliveries", "list", *args, env={
            "XBORDER_DELIVERY_HISTORY": str(history_file)
        })  # fmt: skip
        assert result.returncode == 0, result.stderr
        return [(r[1][:1], r[3]) for r in rows(result.stdout)[1:]]

    assert listed("--alert", "b" * 32) == [("b", "siem"), ("b", "case-officers")]
    assert listed("--receiver", "case-officers") == [("a", "case-officers")] * 2 + [
        ("b", "case-officers")
    ]
    assert listed("--since", "1h") == [("b", "siem"), ("b", "case-officers")]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((NOW - 45_000) / 1000))
    assert listed("--since", since) == [("b", "case-officers")]
    assert listed("--alert", "b" * 32, "--receiver", "siem", "--limit", "5") == [("b", "siem")]
    assert listed("--limit", "1") == [("b", "case-officers")]


def test_list_as_json_lines(history_file: Path) -> None:
    result = run_cli("deliveries", "list", "--json", "--delivery-history", str(history_file))
    assert result.returncode == 0, result.stderr
    got = [Attempt(**json.loads(line)) for line in result.stdout.splitlines()]
    assert got == ATTEMPTS


def test_list_with_nothing_to_show(history_file: Path) -> None:
    args = ("deliveries", "list", "--delivery-history", str(history_file))
    result = run_cli(*args, "--alert", "nope")
    assert result.returncode == 0 and result.stdout == ""
    assert "no delivery attempts match" in result.stderr
    assert run_cli(*args, "--alert", "nope", "--json").stdout == ""


def test_list_refusals_exit_2(tmp_path: Path, history_file: Path) -> None:
    missing = tmp_path / "none.sqlite3"
    result = run_cli("deliveries", "list", "--delivery-history", str(missing))
    assert_refused(result, f"no delivery history at {missing}")
    assert not missing.exists()
    for bad in (["--since", "yesterday"], ["--since", "2026-06-17T09:00:00"], ["--limit", "0"]):
        result = run_cli("deliveries", "list", "--delivery-history", str(history_file), *bad)
        assert result.returncode == 2 and "Traceback" not in result.stderr, bad
        assert f"argument {bad[0]}" in result.stderr
    result = run_cli("deliveries", "list", env={
        "XBORDER_DELIVERY_HISTORY_URL": "mysql://u:pw-1234567890@db/x"
    })  # fmt: skip
    assert_refused(result, "XBORDER_DELIVERY_HISTORY_URL must be a postgresql:// URL")
    assert "pw-1234567890" not in result.stderr


def test_list_from_postgresql(postgres_url: str) -> None:
    from monitor.delivery.history import PostgresHistory

    with closing(PostgresHistory(postgres_url)) as history:
        history.record(ATTEMPTS[0])
    result = run_cli("deliveries", "list", "--json", env={
        "XBORDER_DELIVERY_HISTORY_URL": postgres_url
    })  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [Attempt(**json.loads(line)) for line in result.stdout.splitlines()] == ATTEMPTS[:1]


def test_an_unreachable_postgresql_exits_69(tmp_path: Path) -> None:
    result = run_cli("deliveries", "list", env={
        "XBORDER_DELIVERY_HISTORY_URL": f"postgresql://u:pw-1234567890@/x?host={tmp_path}"
    })  # fmt: skip
    assert result.returncode == 69, result.stderr
    assert "cannot connect to PostgreSQL" in result.stderr
    assert "pw-1234567890" not in result.stderr and "Traceback" not in result.stderr
