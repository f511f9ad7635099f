"""The store's connection rules: WAL, foreign keys, atomic() rollback, idempotent migrations."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from workbench.store.db import ConnectionPool, SharedConnectionError, atomic, connect
from workbench.store.migrations import all_migrations, migrate


def test_connection_pragmas(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_atomic_rolls_back_on_error(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError), atomic(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_nested_atomic_joins_outer(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE t (x INTEGER)")
    with atomic(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(ValueError), atomic(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            raise ValueError
    assert [r[0] for r in conn.execute("SELECT x FROM t")] == [1]


def test_atomic_never_joins_another_threads_transaction(tmp_path: Path) -> None:
    """A connection shared between threads: a second thread's atomic() in the middle of the first
    one's transaction raises instead of joining it (its rows would commit or roll back with the
    other thread's), and the first transaction is untouched."""
    conn = connect(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE t (x INTEGER)")
    inside, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def first() -> None:
        try:
            with atomic(conn):
                conn.execute("INSERT INTO t VALUES (1)")
                inside.set()
                assert release.wait(60)
                conn.execute("INSERT INTO t VALUES (3)")
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(60)
    try:
        with pytest.raises(SharedConnectionError, match="two threads"), atomic(conn):
            conn.execute("INSERT INTO t VALUES (2)")
    finally:
        release.set()
        thread.join()
    assert not failures
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [1, 3]
    with atomic(conn):  # the connection is free again, for any thread
        conn.execute("INSERT INTO t VALUES (4)")
    assert not conn.in_transaction


def test_migrations_are_recorded_and_idempotent(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    first = migrate(conn)
    assert first == [name for name, _ in all_migrations()]
    assert migrate(conn) == []
    names = {r[0] for r in conn.execute("SELECT name FROM migrations")}
    assert set(first) <= names


def test_concurrent_migrate_from_two_connections(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            migrate(connect(path))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    count = connect(path).execute("SELECT count(*) FROM migrations").fetchone()[0]
    assert count == len(all_migrations())


def _open_and_migrate(folder: str, rounds: int, barrier: Barrier, results: Any) -> None:
    """One process of the test below: each round, open and migrate that round's new store."""
    for i in range(rounds):
        barrier.wait(timeout=120)
        try:
            conn = connect(Path(folder) / f"round{i}.sqlite")
            migrate(conn)
            conn.close()
            results.put((i, ""))
        except BaseException as exc:  # reported by the parent
            results.put((i, f"{type(exc).__name__}: {exc}"))


def test_many_processes_open_and_migrate_a_new_store_at_once(tmp_path: Path) -> None:
    """8 processes create the same new store at the same moment, round after round.

    The switch to WAL used to fail at once with "database is locked" in about one round in 20:
    SQLite does not apply the busy timeout to the lock upgrade it needs, so connect() retries it.
    """
    processes, rounds = 8, 30
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [ctx.Process(target=_open_and_migrate, args=(str(tmp_path), rounds, barrier, results))
               for _ in range(processes)]
    for w in workers:
        w.start()
    try:
        outcomes = [results.get(timeout=180) for _ in range(processes * rounds)]
    finally:
        for w in workers:
            w.join(timeout=60)
            if w.is_alive():
                w.kill()
    errors = [f"round {i}: {error}" for i, error in outcomes if error]
    assert not errors, errors[:3]
    expected = len(all_migrations())
    for i in range(rounds):
        conn = connect(tmp_path / f"round{i}.sqlite")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM migrations").fetchone()[0] == expected
        conn.close()


def test_pool_gives_one_connection_per_thread(tmp_path: Path) -> None:
    pool = ConnectionPool(tmp_path / "db.sqlite")
    main = pool.get()
    assert pool.get() is main
    seen: list[sqlite3.Connection] = []
    t = threading.Thread(target=lambda: seen.append(pool.get()))
    t.start()
    t.join()
    assert seen[0] is not main
    pool.close()


def test_close_never_closes_a_connection_another_thread_is_using(tmp_path: Path) -> None:
    """Closing a workspace while a worker thread queries must not crash sqlite3 (it segfaulted)."""
    path = tmp_path / "db.sqlite"
    setup = connect(path)
    setup.execute("CREATE TABLE t (x INTEGER)")
    setup.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(20_000)])
    pool = ConnectionPool(path)
    stop = threading.Event()
    results: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            conn = pool.get()
            while not stop.is_set():
                results.append(conn.execute("SELECT sum(x) FROM t").fetchone()[0])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    while not results and not errors:
        pass
    main_conn = pool.get()
    for _ in range(50):
        pool.close()
    stop.set()
    thread.join()
    assert not errors
    assert set(results) == {sum(range(20_000))}
    with pytest.raises(sqlite3.ProgrammingError):
        main_conn.execute("SELECT 1")
