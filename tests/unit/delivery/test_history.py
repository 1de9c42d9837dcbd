"""The delivery history: one contract, run against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from monitor.config.settings import Settings
from monitor.delivery.history import (
    TABLE,
    DeliveryHistory,
    HistoryUnavailable,
    PostgresHistory,
    SQLiteHistory,
    open_history,
    split_key,
)
from monitor.delivery.model import Attempt, Outcome
from monitor.errors import ConfigError, XborderError

T0 = 1_781_654_400_000  # 2026-06-17T00:00:00Z


def attempt(
    alert_id: str = "a1",
    revision: int = 1,
    receiver: str = "case-officers",
    outcome: Outcome = "delivered",
    at_ms: int = T0,
    n: int = 1,
    status: int | None = 200,
    error: str | None = None,
) -> Attempt:
    return Attempt(
        alert_id=alert_id,
        revision=revision,
        receiver=receiver,
        rule_id="pipa.no_legal_basis",
        attempt=n,
        outcome=outcome,
        at_ms=at_ms,
        latency_ms=at_ms - T0 + 15,
        status=status,
        error=error,
    )


def open_store(kind: str, where: str) -> DeliveryHistory:
    return SQLiteHistory(Path(where)) if kind == "sqlite" else PostgresHistory(where)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(kind, where): a SQLite file or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "deliveries.sqlite3")
    else:
        yield "postgresql", request.getfixturevalue("postgres_url")


@pytest.fixture
def history(store: tuple[str, str]) -> Iterator[DeliveryHistory]:
    h = open_store(*store)
    yield h
    h.close()


# --- the contract --------------------------------------------------------------------


def test_an_attempt_comes_back_as_recorded(history: DeliveryHistory) -> None:
    failed = attempt(outcome="retrying", status=None, error="ConnectTimeout", n=1)
    done = attempt(outcome="delivered", at_ms=T0 + 1000, n=2)
    history.record(failed)
    history.record(done)
    assert history.list() == [failed, done]


def test_delivered_only_after_a_delivered_attempt_of_that_revision_and_receiver(
    history: DeliveryHistory,
) -> None:
    assert not history.delivered("a1.1", "case-officers")
    failures: tuple[Outcome, ...] = ("retrying", "rejected", "exhausted", "duplicate")
    for i, outcome in enumerate(failures, 1):
        history.record(attempt(outcome=outcome, n=i, status=503))
    assert not history.delivered("a1.1", "case-officers")
    history.record(attempt(outcome="delivered", n=5))
    assert history.delivered("a1.1", "case-officers")
    assert not history.delivered("a1.2", "case-officers")
    assert not history.delivered("a1.1", "siem")
    assert not history.delivered("a2.1", "case-officers")


def test_a_key_that_is_no_idempotency_key_is_refused(history: DeliveryHistory) -> None:
    for key in ("a1", "a1.", ".1", "a1.x"):
        with pytest.raises(ValueError, match="idempotency key"):
            history.delivered(key, "case-officers")
    assert split_key("ab.cd.12") == ("ab.cd", 12)


def test_list_filters_and_orders_by_time(history: DeliveryHistory) -> None:
    rows = [
        attempt("a2", receiver="siem", at_ms=T0 + 3000),
        attempt("a1", receiver="case-officers", at_ms=T0 + 1000),
        attempt("a1", receiver="siem", at_ms=T0 + 2000),
        attempt("a1", receiver="case-officers", at_ms=T0 + 2000, revision=2),
    ]
    for row in rows:
        history.record(row)
    assert history.list() == [rows[1], rows[2], rows[3], rows[0]]
    assert history.list(alert_id="a1") == rows[1:]
    assert history.list(receiver="siem") == [rows[2], rows[0]]
    assert history.list(alert_id="a1", receiver="siem") == [rows[2]]
    assert history.list(since_ms=T0 + 2000) == [rows[2], rows[3], rows[0]]
    assert history.list(alert_id="a1", since_ms=T0 + 2001) == []
    assert history.list(alert_id="nope") == []


def test_list_keeps_the_newest_and_ties_in_the_order_recorded(history: DeliveryHistory) -> None:
    rows = [attempt(n=i, at_ms=T0 + 1000 * (i // 2)) for i in range(1, 8)]
    for row in rows:
        history.record(row)
    assert history.list(limit=3) == rows[-3:]
    assert history.list(limit=100) == rows
    with pytest.raises(ValueError):
        history.list(limit=0)


def test_the_history_outlives_the_store_and_a_second_open(store: tuple[str, str]) -> None:
    with closing(open_store(*store)) as first:
        first.record(attempt())
    with closing(open_store(*store)) as again:
        assert again.delivered("a1.1", "case-officers")
        again.record(attempt("a2"))
        assert [a.alert_id for a in again.list()] == ["a1", "a2"]


def test_threads_may_share_one_store(history: DeliveryHistory) -> None:
    def work(t: int) -> None:
        for i in range(25):
            history.record(attempt(f"t{t}", revision=i + 1, at_ms=T0 + i))
            assert history.delivered(f"t{t}.{i + 1}", "case-officers")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(history.list(limit=1000)) == 200


def _columns(kind: str, where: str) -> set[str]:
    if kind == "sqlite":
        with sqlite3.connect(where) as conn:
            return {row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")}
    with psycopg.connect(where) as pg:
        rows = pg.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", [TABLE]
        ).fetchall()
        return {row[0] for row in rows}


def test_it_keeps_the_attempt_fields_alone(
    history: DeliveryHistory, store: tuple[str, str]
) -> None:
    history.record(attempt())
    fields = set(Attempt.__dataclass_fields__)
    assert _columns(*store) == fields | {"id"}


# --- SQLite --------------------------------------------------------------------------


def test_sqlite_is_in_wal_mode_and_asks_the_delivered_index(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    SQLiteHistory(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        plan = conn.execute(
            f"EXPLAIN QUERY PLAN SELECT 1 FROM {TABLE} WHERE alert_id = ? AND revision = ? "
            "AND receiver = ? AND outcome = 'delivered' LIMIT 1",
            ["a", 1, "r"],
        ).fetchall()
    assert f"{TABLE}_delivered" in str(plan)


def test_a_reader_needs_an_existing_history(tmp_path: Path) -> None:
    with pytest.raises(XborderError, match="no delivery history at"):
        SQLiteHistory(tmp_path / "none.sqlite3", create=False)
    assert not (tmp_path / "none.sqlite3").exists()
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).close()
    with pytest.raises(XborderError, match="is not a delivery history"):
        SQLiteHistory(other, create=False)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(XborderError, match="garbage"):
        SQLiteHistory(garbage)


def test_open_history_makes_the_default_file_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with closing(open_history(settings)) as history:
        assert isinstance(history, SQLiteHistory)
        assert history.path == tmp_path / "data" / "deliveries.sqlite3"
    assert (tmp_path / "data" / "deliveries.sqlite3").is_file()
    with closing(open_history(Settings(delivery_history=tmp_path / "h.db"))) as history:
        assert isinstance(history, SQLiteHistory)
        assert history.path == tmp_path / "h.db"


def test_a_postgresql_url_in_the_file_setting_is_refused_without_echo() -> None:
    settings = Settings(delivery_history=Path("postgresql://u:pw-123456@db/x"))
    with pytest.raises(ConfigError, match="XBORDER_DELIVERY_HISTORY_URL") as err:
        open_history(settings)
    assert "pw-123456" not in str(err.value)


def test_the_url_setting_takes_postgresql_urls_alone_and_never_shows_them() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"XBORDER_DELIVERY_HISTORY_URL": "mysql://u:pw-123456@db/x"})
    assert str(err.value) == "XBORDER_DELIVERY_HISTORY_URL must be a postgresql:// URL"
    s = Settings.from_env({"XBORDER_DELIVERY_HISTORY_URL": "postgresql://u:pw-123456@db/x"})
    assert "pw-123456" not in repr(s)


# --- PostgreSQL ----------------------------------------------------------------------


def test_open_history_picks_postgresql_when_its_url_is_set(postgres_url: str) -> None:
    with closing(open_history(Settings(delivery_history_url=postgres_url))) as history:
        assert isinstance(history, PostgresHistory)
        history.record(attempt())
        assert history.delivered("a1.1", "case-officers")


def test_an_unreachable_server_is_unavailable_and_no_password_is_shown(tmp_path: Path) -> None:
    url = f"postgresql://u:pw-123456@/x?host={tmp_path}"
    with pytest.raises(HistoryUnavailable, match="cannot connect to PostgreSQL") as err:
        PostgresHistory(url, connect_timeout=2)
    assert "pw-123456" not in str(err.value)
    with pytest.raises(ConfigError, match="not a valid PostgreSQL URL") as bad:
        PostgresHistory("postgresql://u:pw-123456@h/x?pw-123456=1")
    assert "pw-123456" not in str(bad.value)


def test_a_broken_connection_is_opened_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with closing(PostgresHistory(postgres_url)) as history:
        history.record(attempt("before"))
        connects: list[None] = []
        connect = history._connect

        def counted() -> psycopg.Connection[tuple[object, ...]]:
            connects.append(None)
            return connect()

        monkeypatch.setattr(history, "_connect", counted)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        history.record(attempt("after", at_ms=T0 + 1))
        assert [a.alert_id for a in history.list()] == ["before", "after"]
        assert len(connects) == 1


def test_workers_starting_together_create_the_schema_once(postgres_url: str) -> None:
    failures: list[BaseException] = []

    def start() -> None:
        try:
            PostgresHistory(postgres_url).close()
        except BaseException as e:  # reported below, with the others
            failures.append(e)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
