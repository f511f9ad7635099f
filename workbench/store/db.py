"""SQLite connections for a project: WAL mode, a busy timeout, foreign keys, and ``atomic()``.

Several processes share one database (the TUI, the watcher, running jobs, CLI commands), so every
connection waits for locks instead of failing, and every write goes through :func:`atomic`, which
takes the write lock up front (``BEGIN IMMEDIATE``) so that two writers never deadlock on upgrade.

Switching a new database file to WAL is the one step SQLite's busy timeout does not cover: the
switch reads page 1 under a shared lock, then upgrades to an exclusive lock to write the new file
format, and SQLite refuses that upgrade at once (``SQLITE_BUSY``, no busy handler: waiting could
deadlock two upgraders) when another connection holds a lock. Several processes opening a new
store together (a watcher, the TUI and a run started by ``workbench init``) hit it, so
:func:`connect` retries the switch itself until the busy timeout has passed.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import BusyError, WorkbenchError

BUSY_TIMEOUT_MS = 30_000


class DatabaseDamagedError(WorkbenchError):
    """The project database file is not a SQLite database any more, or is malformed."""


def database_error(exc: sqlite3.Error, path: Path | None = None) -> WorkbenchError:
    """The one-line, user-facing form of a SQLite failure (damaged file, lock, disk, permissions)."""
    what = f"the project database {path}" if path is not None else "the project database"
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return BusyError(f"{what} is locked by another workbench process ({text})",
                         "try again when it has finished")
    if isinstance(exc, sqlite3.OperationalError) and any(
        word in lowered for word in ("unable to open", "readonly", "read-only", "disk i/o", "full")
    ):
        return WorkbenchError(f"cannot use {what}: {text}",
                              "check the folder's permissions and the free disk space")
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return DatabaseDamagedError(
            f"{what} is damaged: {text}",
            "restore .workbench/workbench.db from a backup, or move it aside and run 'workbench init' "
            "to start a new history (stored file contents in the blob cache are kept)",
        )
    return WorkbenchError(f"{what} failed: {text}")


EMPTY_GRACE_SECONDS = 2.0
"""How long an empty database file may stay empty: a concurrent ``init`` fills it in milliseconds."""


def refuse_empty(path: Path) -> None:
    """A 0-byte database file in an existing project is damage, never a new project.

    SQLite would silently treat it as a new, empty database (and the next write would make that
    permanent, hiding the loss). The only legitimate empty file is the instant between another
    process's ``init`` creating it and writing its header, so an empty file gets a short grace.
    """
    deadline = time.monotonic() + EMPTY_GRACE_SECONDS
    while True:
        try:
            if path.stat().st_size > 0:
                return
        except OSError:  # absent (a new project) or unreadable: connect() reports that itself
            return
        if time.monotonic() >= deadline:
            raise DatabaseDamagedError(
                f"the project database {path} is empty (0 bytes): the project's history is lost or "
                "was never written", "restore .workbench/workbench.db from a backup, or move it aside and "
                "run 'workbench init' to start a new history; the blob cache is kept")
        time.sleep(0.05)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the project database with the pragmas every connection needs.

    A file that is not a database (or is malformed, locked, unreadable) raises the
    :class:`~workbench.errors.WorkbenchError` from :func:`database_error`, not ``sqlite3.Error``;
    an empty file raises :class:`DatabaseDamagedError` (:func:`refuse_empty`).
    """
    refuse_empty(path)
    conn: sqlite3.Connection | None = None
    try:
        if readonly:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None, check_same_thread=False,
            )
        else:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            _switch_to_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise database_error(exc, path) from exc
    return conn


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc).lower() or "busy" in str(exc).lower()


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode = WAL``, retried while another connection holds the lock it needs.

    On a file already in WAL mode this takes no write lock and succeeds at once.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.002
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
        # Jittered so that processes that collided once do not collide again in step.
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.1)


class SharedConnectionError(RuntimeError):
    """:func:`atomic` on a connection in the middle of another thread's transaction."""


_TRANSACTION_OWNERS: dict[int, int] = {}
"""id(connection) -> the thread that began its open transaction in :func:`atomic`."""


@contextmanager
def atomic(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception.

    Nested use joins the outer transaction (a savepoint), so helpers can call it freely. Only the
    thread that began the transaction may join it: a connection shared between threads must be
    used by one of them at a time (another thread's work would commit or roll back with it), and a
    thread that tries raises :class:`SharedConnectionError` rather than join.
    """
    me = threading.get_ident()
    if conn.in_transaction:
        owner = _TRANSACTION_OWNERS.get(id(conn), me)
        if owner != me:
            raise SharedConnectionError("a database connection was used by two threads at once"
                                        " (a bug in workbench: please report it)")
        name = f"sp_{me}_{id(conn)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    _TRANSACTION_OWNERS[id(conn)] = me
    try:
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk, an I/O error)
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT leaves it open: never let the next one join it
                conn.execute("ROLLBACK")
            raise
    finally:
        _TRANSACTION_OWNERS.pop(id(conn), None)


class ConnectionPool:
    """One connection per thread for one database file (sqlite3 connections are not thread-safe).

    :meth:`close` closes the calling thread's connection and those of threads that have ended.
    A connection still owned by a live thread (a UI worker in the middle of a query) is never
    closed from another thread, which crashes sqlite3: the pool lets go of it instead, and it is
    closed when its thread ends and drops it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._all.append((threading.current_thread(), conn))
        return conn

    def close(self) -> None:
        me = threading.current_thread()
        with self._lock:
            for owner, conn in self._all:
                if owner is me or not owner.is_alive():
                    try:
                        conn.close()
                    except sqlite3.Error:
                        pass
            self._all.clear()
        self._local = threading.local()
