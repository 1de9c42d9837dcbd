"""The delivery history: every attempt's outcome, kept after the alerts topic forgets.

It answers two questions: has this alert revision reached this receiver
(`delivered`, so a restart never sends again what a receiver acknowledged),
and what happened to an alert's deliveries (`list`, for `xborder deliveries`
and an auditor). It holds the `Attempt` fields alone: no payload, nothing
about a data subject.

Two stores behind one interface: a SQLite file (the default, one process) and
PostgreSQL (when XBORDER_DELIVERY_HISTORY_URL is set; every worker shares it).
Calls are synchronous and short; the sender makes them from a thread
(asyncio.to_thread). A store that cannot be reached, read or written raises
`HistoryUnavailable`.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, cast
from urllib.parse import unquote, urlsplit

from monitor.delivery.model import Attempt
from monitor.errors import ConfigError, ServiceUnavailable, XborderError

if TYPE_CHECKING:
    import psycopg

    from monitor.config.settings import Settings

__all__ = [
    "TABLE",
    "DeliveryHistory",
    "HistoryUnavailable",
    "PostgresHistory",
    "SQLiteHistory",
    "open_history",
    "split_key",
]

TABLE: Final = "xborder_delivery_attempts"
DEFAULT_LIMIT: Final = 1000
_COLUMNS: Final = (
    "alert_id",
    "revision",
    "receiver",
    "rule_id",
    "attempt",
    "outcome",
    "at_ms",
    "latency_ms",
    "status",
    "error",
)


class HistoryUnavailable(ServiceUnavailable):
    """The history's database could not be opened, read or written."""


def split_key(key: str) -> tuple[str, int]:
    """An idempotency key (`alert_id.revision`) as alert id and revision."""
    alert_id, dot, revision = key.rpartition(".")
    if not dot or not alert_id or not revision.isdigit():
        raise ValueError(f"not an idempotency key (alert_id.revision): {key[:80]!r}")
    return alert_id, int(revision)


class DeliveryHistory(Protocol):
    """Where attempts are recorded and asked about (`contextlib.closing` closes one)."""

    def record(self, attempt: Attempt) -> None:
        """Keep one attempt's outcome."""

    def delivered(self, key: str, receiver: str) -> bool:
        """Whether an attempt of the alert revision `key` to `receiver` was delivered."""

    def list(
        self,
        alert_id: str | None = None,
        receiver: str | None = None,
        since_ms: int | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> builtins.list[Attempt]:
        """The newest `limit` attempts that match, oldest first."""

    def close(self) -> None: ...


def _schema(id_column: str) -> builtins.list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        f"id {id_column}, alert_id TEXT NOT NULL, revision INTEGER NOT NULL, "
        "receiver TEXT NOT NULL, rule_id TEXT NOT NULL, attempt INTEGER NOT NULL, "
        "outcome TEXT NOT NULL, at_ms BIGINT NOT NULL, latency_ms BIGINT NOT NULL, "
        "status INTEGER, error TEXT)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_alert ON {TABLE} (alert_id, at_ms)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_receiver ON {TABLE} (receiver, at_ms)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_at ON {TABLE} (at_ms)",
        # What `delivered` asks, before every send: partial, so it holds the
        # deliveries alone and stays small beside the retries.
        f"CREATE INDEX IF NOT EXISTS {TABLE}_delivered ON {TABLE} "
        "(alert_id, revision, receiver) WHERE outcome = 'delivered'",
    ]


class _SQLHistory(ABC):
    """A DeliveryHistory in SQL: the queries both stores run, `_param` their driver's
    placeholder."""

    _param: str

    def __init__(self) -> None:
        # One connection, used by one thread at a time (the sender's calls come
        # from a pool of threads).
        self._lock = threading.Lock()

    @abstractmethod
    def _run(self, sql: str, params: Sequence[object]) -> builtins.list[tuple[Any, ...]]:
        """Run one statement (its own transaction); the rows it returns."""

    @abstractmethod
    def close(self) -> None: ...

    def record(self, attempt: Attempt) -> None:
        values = [getattr(attempt, column) for column in _COLUMNS]
        marks = ", ".join([self._param] * len(_COLUMNS))
        self._run(f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) VALUES ({marks})", values)

    def delivered(self, key: str, receiver: str) -> bool:
        alert_id, revision = split_key(key)
        p = self._param
        # The literal outcome lets both databases use the partial index.
        sql = (
            f"SELECT 1 FROM {TABLE} WHERE alert_id = {p} AND revision = {p} "
            f"AND receiver = {p} AND outcome = 'delivered' LIMIT 1"
        )
        return bool(self._run(sql, [alert_id, revision, receiver]))

    def list(
        self,
        alert_id: str | None = None,
        receiver: str | None = None,
        since_ms: int | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> builtins.list[Attempt]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        p = self._param
        where: builtins.list[str] = []
        params: builtins.list[object] = []
        for condition, value in (
            (f"alert_id = {p}", alert_id),
            (f"receiver = {p}", receiver),
            (f"at_ms >= {p}", since_ms),
        ):
            if value is not None:
                where.append(condition)
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM {TABLE}{clause} "
            f"ORDER BY at_ms DESC, id DESC LIMIT {p}"
        )
        rows = self._run(sql, [*params, limit])
        return [Attempt(*row) for row in reversed(rows)]


class SQLiteHistory(_SQLHistory):
    """The history in a SQLite file (WAL: readers such as `xborder deliveries` do not
    block the sender)."""

    _param = "?"

    def __init__(self, path: Path, *, create: bool = True, busy_timeout: float = 5.0) -> None:
        super().__init__()
        self.path = path
        if not create and not path.is_file():
            raise XborderError(f"no delivery history at {path}")
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: each attempt is kept once `record` returns.
            self._conn = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as e:
            raise HistoryUnavailable(f"delivery history {path}: cannot open: {e}") from None
        try:
            self._run("PRAGMA journal_mode=WAL", ())
            # Durable across a crash of the process; a power cut may lose the
            # last attempts, and then a delivery is sent again, which receivers
            # drop by its idempotency key.
            self._run("PRAGMA synchronous=NORMAL", ())
            if create:
                for statement in _schema("INTEGER PRIMARY KEY"):
                    self._run(statement, ())
            elif not self._run("SELECT 1 FROM sqlite_master WHERE name = ?", [TABLE]):
                raise XborderError(f"{path} is not a delivery history")
        except XborderError:
            self._conn.close()
            raise

    def _run(self, sql: str, params: Sequence[object]) -> builtins.list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as e:  # locked too long, disk full, unreadable
            raise HistoryUnavailable(f"delivery history {self.path}: {e}") from None
        except sqlite3.Error as e:  # not a database, damaged
            raise XborderError(f"delivery history {self.path}: {e}") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresHistory(_SQLHistory):
    """The history in PostgreSQL, shared by every worker; reconnects once when the
    connection broke (a server restart, a failover)."""

    _param = "%s"

    def __init__(self, url: str, *, create: bool = True, connect_timeout: int = 10) -> None:
        super().__init__()
        self._url = url
        self._connect_timeout = connect_timeout
        self._conn = self._connect()
        if create:
            self._create_schema()

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg

        try:
            return psycopg.connect(
                self._url, autocommit=True, connect_timeout=self._connect_timeout
            )
        except psycopg.ProgrammingError:
            # Its text may quote the URL.
            raise ConfigError(
                "XBORDER_DELIVERY_HISTORY_URL is not a valid PostgreSQL URL"
            ) from None
        except psycopg.Error as e:
            raise HistoryUnavailable(
                f"delivery history: cannot connect to PostgreSQL: {self._scrub(e)}"
            ) from None

    def _scrub(self, error: BaseException) -> str:
        """The driver's message, its first line, with no password in it."""
        text = (str(error).strip().splitlines() or [type(error).__name__])[0]
        try:
            password = urlsplit(self._url).password
        except ValueError:
            password = None
        for secret in (self._url, password, unquote(password or "")):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _create_schema(self) -> None:
        import psycopg

        try:
            with self._lock, self._conn.transaction():
                # Workers starting together would race on CREATE ... IF NOT EXISTS
                # (a unique violation in the catalog): the first creates, the others wait.
                self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [TABLE])
                for statement in _schema("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"):
                    self._conn.execute(cast("Any", statement))
        except psycopg.Error as e:
            self._conn.close()
            raise HistoryUnavailable(
                f"delivery history: cannot create its table: {self._scrub(e)}"
            ) from None

    def _run(self, sql: str, params: Sequence[object]) -> builtins.list[tuple[Any, ...]]:
        import psycopg

        with self._lock:
            for retry in (False, True):
                try:
                    # psycopg types queries as literal strings; these are built
                    # from this module's constants alone.
                    cursor = self._conn.execute(cast("Any", sql), params or None)
                    return cursor.fetchall() if cursor.description else []
                except psycopg.OperationalError as e:
                    # A broken connection is opened again, once. Were it an
                    # insert the server had committed, the attempt is kept twice:
                    # the history shows it twice, `delivered` answers the same.
                    if retry or not self._conn.broken:
                        raise HistoryUnavailable(f"delivery history: {self._scrub(e)}") from None
                    self._conn = self._connect()
                except psycopg.Error as e:
                    raise HistoryUnavailable(f"delivery history: {self._scrub(e)}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_history(settings: Settings, *, create: bool = True) -> DeliveryHistory:
    """The history the settings name: PostgreSQL when XBORDER_DELIVERY_HISTORY_URL is
    set, else the SQLite file. `create`: make the file and schema when absent;
    off, a missing file is an error (a reader has nothing to read)."""
    if settings.delivery_history_url is not None:
        return PostgresHistory(settings.delivery_history_url.get_secret_value(), create=create)
    path = settings.delivery_history_path
    # Path() has already folded the URL's '//': recognised by its scheme alone.
    if path.parts and path.parts[0].startswith(("postgresql:", "postgres:")):
        raise ConfigError(
            "XBORDER_DELIVERY_HISTORY (--delivery-history) names a SQLite file; "
            "a PostgreSQL URL goes in XBORDER_DELIVERY_HISTORY_URL"
        )
    return SQLiteHistory(path, create=create)
