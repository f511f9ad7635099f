"""The warm recorder: a background process with ``workbench run``'s modules imported, forking one
worker per run (see :mod:`workbench.cli.warm` for the client and what makes a warm run the same as
a cold one).

``python -P -m workbench.cli.warm_server`` (started by a cold ``workbench run``, the TUI or
``workbench watch``): binds the abstract socket named after its
:func:`~workbench.cli.warm.fingerprint` (or leaves at once if another recorder has it), imports the
run path, then serves one connection at a time. Each request is checked (the peer's user id, the
facts, the source files' timestamps) before a single-threaded ``fork``; the worker resets the
signals, sends its pid, waits for the client's go-ahead (which brings the caller's stdin, stdout
and stderr), takes the caller's cwd, environment, umask, argv and ``sys.path[0]``, and runs
:func:`workbench.cli.main` as the cold process would. The recorder
never opens a project, a database or a thread itself, so nothing but imported code crosses the
fork.

It exits when idle for ``WORKBENCH_WARM_IDLE`` seconds (default 600) with no worker left, when a
source file it imported changed (after refusing that request), or when another recorder holds its
address.
"""

from __future__ import annotations

import _socket
import gc
import io
import os
import select
import signal
import sys
import threading
import time
import traceback
from typing import Any

from workbench.cli import warm

PRELOAD = (
    "workbench.cli", "workbench.cli.cmd_runs", "workbench.cli.run_request", "workbench.cli.common",
    "workbench.config", "workbench.core.workspace", "workbench.store.migrations",
    "workbench.tracking.service", "workbench.tracking.runner", "workbench.tracking.finalize",
    "workbench.tracking.writes", "workbench.tracking.libcapture", "workbench.tracking.ingest",
    "workbench.tracking.capture", "workbench.tracking.capture_tb", "workbench.tracking.metric_files",
    "workbench.tracking.point_writes", "workbench.tracking.reattach", "workbench.store.metric_chunks",
    "workbench.executors.local", "workbench.executors.registry", "workbench.executors.resources",
    "workbench.executors.service", "workbench.host.gpus", "workbench.versioning.service",
    "workbench.versioning.worktree", "workbench.versioning.versioned", "workbench.versioning.blobs",
    "workbench.versioning.packs", "workbench.versioning.locks", "workbench.versioning.reports",
    "workbench.versioning.chunking", "workbench.versioning.secrets", "workbench.versioning.forked",
    "workbench.versioning.environments",
    "workbench.tracking._inject.sitecustomize", "sqlite3", "subprocess", "json", "tomllib",
)
"""What a local ``workbench run`` imports before, while and after its child runs, numpy included
(the metric points are packed with it) but with its thread pools held to one thread: the recorder
forks, so it must hold no thread, and checks that it holds none before each fork.
tests/cli/test_warm.py fails when a plain run still imports a Workbench module in the worker."""
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_ACCEPT_TIMEOUT = 5.0


class Refused(Exception):
    """A request the recorder will not serve; ``stop``: the recorder exits after saying so."""

    def __init__(self, reason: str, stop: bool = False) -> None:
        super().__init__(reason)
        self.stop = stop


def preload() -> None:
    """Import the run path and build ``workbench run``'s parser once, for the next worker to use."""
    import importlib

    os.environ.update(SINGLE_THREADED)  # the workers take their caller's environment instead
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    from workbench.store.migrations import SCHEMA_MODULES

    for name in SCHEMA_MODULES:
        importlib.import_module(name)
    from workbench.cli import prebuild

    prebuild("run")


def threads() -> int:
    """Threads of this process, native ones included."""
    return len(os.listdir("/proc/self/task"))


def source_stamps() -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every imported Workbench source file."""
    stamps: dict[str, tuple[int, int]] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.split(".")[0] == "workbench" and path:
            try:
                st = os.stat(path)
            except OSError:
                continue
            stamps[path] = (st.st_mtime_ns, st.st_size)
    return stamps


def _unchanged(stamps: dict[str, tuple[int, int]]) -> bool:
    for path, stamp in stamps.items():
        try:
            st = os.stat(path)
        except OSError:
            return False
        if (st.st_mtime_ns, st.st_size) != stamp:
            return False
    return True


def serve(idle: float) -> int:
    facts = warm.fingerprint()
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        listener.bind(warm.socket_name(facts))
    except OSError:  # another recorder serves these facts: leave before importing anything
        listener.close()
        return 0
    listener.listen(64)
    preload()  # a client that connects meanwhile waits in the backlog (well within its 5 s)
    stamps = source_stamps()
    gc.collect()
    gc.freeze()  # workers then do not copy the recorder's objects by touching their GC headers
    workers: set[int] = set()
    # A worker is reaped the moment it ends: a zombie would still read as a live owner of its run.
    signal.signal(signal.SIGCHLD, lambda _number, _frame: _reap(workers))
    last = time.monotonic()
    try:
        while True:
            _reap(workers)
            ready, _, _ = select.select([listener], [], [], 1.0)
            if not ready:
                if not workers and time.monotonic() - last > idle:
                    return 0
                continue
            try:
                fd, _ = listener._accept()  # type: ignore[attr-defined]  # _socket's accept: (fd, address)
                conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
            except OSError:
                continue
            last = time.monotonic()
            try:
                pid = _handle(conn, listener, facts, stamps)
                if pid:
                    workers.add(pid)
            except Refused as refusal:
                _reply(conn, {"refused": str(refusal)})
                if refusal.stop:
                    return 0
            except (OSError, EOFError, ValueError, TypeError, KeyError):
                pass
            finally:
                conn.close()
    finally:
        listener.close()


def _reap(workers: set[int]) -> None:
    """Reap every ended worker (the recorder has no other children)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # none left, including one reaped before it was added
            workers.clear()
            return
        if pid == 0:
            return
        workers.discard(pid)


def _reply(conn: Any, message: object) -> None:
    try:
        conn.sendall(warm.frame(message))
    except OSError:
        pass


def _receive(conn: Any) -> dict[str, Any]:
    """The request (it carries no descriptors: those come with the go-ahead, see :func:`_go_ahead`)."""
    request = warm.read_message(conn)
    if not isinstance(request, dict):
        raise ValueError("malformed request")
    return request


def _handle(conn: Any, listener: Any, facts: dict[str, object],
            stamps: dict[str, tuple[int, int]]) -> int | None:
    """Check one request and fork its worker; returns the worker's pid."""
    conn.settimeout(_ACCEPT_TIMEOUT)
    if warm.peer_uid(conn) != os.getuid():
        return None
    request = _receive(conn)
    if request.get("facts") != facts:
        raise Refused("this recorder was started by a process with other facts")
    if not _unchanged(stamps):
        raise Refused("Workbench's source changed since this recorder started", stop=True)
    if threads() != 1:
        raise Refused("the recorder holds a thread: it cannot fork safely", stop=True)
    pid = os.fork()
    if pid == 0:  # the worker
        status = 70
        try:
            listener.close()
            status = _work(conn, request)
        finally:
            os._exit(status)
    return pid


def _go_ahead(conn: Any) -> list[int] | None:
    """The client's go-ahead with its stdin, stdout and stderr; None when it gave up or died. The
    descriptors travel only now: a client that never got a pid never lent them to anyone (a stopped
    recorder would otherwise hold its pipes open, and whoever reads them would never see the end)."""
    data, ancillary, _flags, _addr = conn.recvmsg(len(warm.GO), _socket.CMSG_SPACE(3 * 4))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i:i + 4], sys.byteorder, signed=True) for i in range(0, usable, 4)]
    if data == warm.GO and len(fds) == 3:
        return fds
    for fd in fds:
        os.close(fd)
    return None


def _work(conn: Any, request: dict[str, Any]) -> int:
    """Become the caller's ``workbench run`` and return its exit status (never raises)."""
    os.setsid()
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD, signal.SIGTSTP):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    conn.settimeout(None)
    conn.sendall(warm.frame({"pid": os.getpid()}))
    fds = _go_ahead(conn)
    if fds is None:  # the client gave up (and runs cold) or died: do nothing
        return 70
    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    _take_stdio(request["stdio"])
    finished = threading.Event()
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()  # time.timezone and friends from the caller's TZ
        os.umask(int(request["umask"]))
        sys.argv = [str(request["argv0"]), *request["argv"]]
        if request.get("path0") is not None:
            sys.path.insert(0, str(request["path0"]))
        threading.Thread(target=_die_with_client, args=(conn, finished), daemon=True,
                         name="warm-client-watch").start()
        status = _main(list(request["argv"]))
    except BaseException:  # the worker must report, whatever happened
        traceback.print_exc()
        status = 1
    _shut_down()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    finished.set()
    _reply(conn, {"exit": status})
    return status


def _shut_down() -> None:
    """What the interpreter does at exit before the worker's ``os._exit``: wait for the threads that
    are not daemons, then run the ``atexit`` handlers."""
    import atexit

    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            try:
                thread.join()
            except BaseException:  # Ctrl+C while waiting: stop waiting, as the interpreter would
                break
    try:
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()


def _main(argv: list[str]) -> int:
    """:func:`workbench.cli.main` with ``SystemExit`` turned into a status, as the interpreter would."""
    from workbench.cli import main

    try:
        return int(main(argv))
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        sys.stderr.write(f"{code}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


def _take_stdio(settings: list[tuple[str, str, bool, bool]]) -> None:
    """New ``sys.stdin/stdout/stderr`` on descriptors 0-2 with the caller's encodings and buffering."""
    streams = []
    for fd, (encoding, errors, line_buffering, write_through) in enumerate(settings):
        raw = open(fd, "rb" if fd == 0 else "wb", closefd=False)  # noqa: SIM115 - the new sys.stdio
        streams.append(io.TextIOWrapper(raw, encoding=encoding, errors=errors, line_buffering=line_buffering,
                                        write_through=write_through))
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]


def _die_with_client(conn: Any, finished: threading.Event) -> None:
    """The client closed its end before the run finished (killed, even by SIGKILL): die as it did."""
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass
    if not finished.is_set():
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    try:
        idle = float(os.environ.get(warm.ENV_IDLE, warm.DEFAULT_IDLE))
    except ValueError:
        idle = warm.DEFAULT_IDLE
    if not warm.enabled(os.environ):
        return 0
    return serve(idle)


if __name__ == "__main__":
    raise SystemExit(main())
