"""Warm start for ``workbench run``: hand the command to a recorder that has already imported Workbench.

A cold ``workbench run`` spends most of its overhead importing Workbench (~60-90 ms on a 2-core
machine) before the child can start. After one, a **warm recorder** (:mod:`workbench.cli.warm_server`)
waits in the background with those modules imported. The next ``workbench run`` (this module: a
client that imports only the interpreter's built-ins) connects to it and passes its argv, cwd,
environment, umask and its stdin/stdout/stderr; the recorder forks a worker that becomes that
``workbench run``: the same :func:`workbench.cli.main` code, in the caller's folder, with the
caller's environment, writing to the caller's terminal. The child command itself still starts in
a session of its own, exactly as from a cold run.

Equivalence holds by construction, or the warm path is not taken:

- the recorder is found by a key derived from everything that decides how this process would
  behave and cannot be handed over: interpreter, ``sys.path``, ``sys.flags``, warning and ``-X``
  options, user and groups, cgroup, resource limits, CPU affinity and niceness. The recorder checks
  the same facts again and refuses a mismatch; the client then runs cold;
- the recorder refuses (and exits) once any Workbench source file it imported has changed on disk;
- both ends check the other's user id on the socket (``SO_PEERCRED``);
- the worker sends its pid and starts only on the client's answer (:data:`GO`), so a refusal, a
  recorder that vanished or one too slow to answer within :data:`REPLY_TIMEOUT` always means a cold
  run, and a run is never started twice;
- Ctrl+C, SIGTERM, SIGHUP and SIGQUIT are forwarded to the worker, Ctrl+Z stops it with the client, and a
  client that dies (even by SIGKILL) takes its worker with it, as a cold process would die.

``WORKBENCH_WARM=0`` turns it off (no recorder is used or started). Linux only (``/proc``, abstract
sockets); elsewhere every run is cold.
"""

from __future__ import annotations

import marshal
import os
import sys

ENV_SWITCH = "WORKBENCH_WARM"
"""``0`` (or ``off``/``no``/``false``): never use or start a warm recorder."""
ENV_IDLE = "WORKBENCH_WARM_IDLE"
"""Seconds a recorder waits for the next run before it exits (default :data:`DEFAULT_IDLE`)."""
DEFAULT_IDLE = 600.0
PROTOCOL = 1
GO = b"g"
"""What the client answers to the worker's pid, with its stdin, stdout and stderr attached: the worker
starts only then, so a client that gave up waiting (and runs cold) can never also have a warm run
started for it, nor have lent its descriptors to a recorder that may never let them go."""
REPLY_TIMEOUT = 5.0
"""Seconds to wait for the worker's pid (a stopped or swamped recorder) before running cold."""
_HEADER = 4
_MAX_MESSAGE = 64 << 20
_FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")

absent = False
"""Set when warm start is on and no recorder answered: the cold run then starts one for next time."""


def enabled(env: dict[str, str] | os._Environ[str]) -> bool:
    return sys.platform.startswith("linux") and env.get(ENV_SWITCH, "1").lower() not in (
        "0", "off", "no", "false")


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


_STATUS_LINES = ("Cap", "NoNewPrivs", "Seccomp", "Cpus_allowed", "Mems_allowed")
"""Lines of ``/proc/self/status`` that a process inherits and cannot hand over: capabilities,
no_new_privs, the seccomp mode, allowed CPUs and memory nodes."""
_NAMESPACES = ("mnt", "pid", "user", "ipc", "uts", "net", "cgroup")
_LOADER_ENV = ("LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONMALLOC", "MALLOC_ARENA_MAX")
"""Environment read once when the interpreter and its libraries load (the rest is handed over)."""


def fingerprint() -> dict[str, object]:
    """What decides how a ``workbench run`` process behaves and is fixed when its interpreter starts
    (the environment, cwd, umask and stdio are handed over instead). ``sys.path[0]`` (the script's
    folder or the cwd) is left out: the worker takes the caller's."""
    import _locale

    import workbench

    path = list(sys.path)
    if not sys.flags.safe_path and path:
        path = path[1:]
    flags = {name: getattr(sys.flags, name) for name in type(sys.flags).__match_args__ if name != "safe_path"}
    status = [line for line in _read("/proc/self/status").splitlines() if line.startswith(_STATUS_LINES)]
    root = os.stat("/")
    return {
        "protocol": PROTOCOL, "executable": sys.executable, "prefix": sys.prefix, "version": sys.version,
        "path": path, "flags": flags, "warnoptions": list(sys.warnoptions),
        "xoptions": sorted((str(k), str(v)) for k, v in sys._xoptions.items()),
        "fsencoding": sys.getfilesystemencoding(), "locale": _locale.setlocale(_locale.LC_CTYPE),
        "package": workbench.__file__,
        "ids": (os.getuid(), os.geteuid(), os.getgid(), os.getegid(), sorted(os.getgroups())),
        "cgroup": _read("/proc/self/cgroup"), "limits": _read("/proc/self/limits"), "status": status,
        "namespaces": [os.readlink(f"/proc/self/ns/{name}") for name in _NAMESPACES],
        "root": (root.st_dev, root.st_ino), "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "loader": [os.environ.get(name) for name in _LOADER_ENV],
    }


def socket_name(facts: dict[str, object]) -> bytes:
    """The recorder's abstract socket address for these facts (one recorder per user and set of facts)."""
    blob = marshal.dumps(facts)
    digest = 0xCBF29CE484222325  # FNV-1a, 64 bit: no hashlib/zlib import on the client's path
    for byte in blob:
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"\0workbench-warm-{os.getuid()}-{digest:016x}".encode()


def frame(message: object) -> bytes:
    data = marshal.dumps(message)  # type: ignore[arg-type]
    return len(data).to_bytes(_HEADER, "big") + data


def read_message(sock: object) -> object:
    """One framed message from ``sock``; EOFError when the peer closed first."""
    head = _read_exactly(sock, _HEADER)
    size = int.from_bytes(head, "big")
    if size > _MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes")
    return marshal.loads(_read_exactly(sock, size))


def _read_exactly(sock: object, size: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk: bytes = sock.recv(min(size - got, 1 << 20))  # type: ignore[attr-defined]
        if not chunk:
            raise EOFError("peer closed")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def peer_uid(sock: object) -> int:
    import _socket

    raw: bytes = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # type: ignore[attr-defined]
    return int.from_bytes(raw[4:8], sys.byteorder)


def _stdio() -> list[tuple[str, str, bool, bool]] | None:
    """Encoding, errors and buffering of the caller's text stdio (None: one is closed or replaced)."""
    import io

    out = []
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        if not isinstance(stream, io.TextIOWrapper):
            return None
        out.append((stream.encoding, stream.errors or "strict", stream.line_buffering, stream.write_through))
    return out


def run_warm(argv: list[str]) -> int | None:
    """Run ``workbench ARGV`` through a warm recorder and return its exit status; None when there is
    none to use (nothing has been started then: the caller runs the command cold)."""
    global absent
    if not enabled(os.environ):
        return None
    try:
        facts = fingerprint()
        stdio = _stdio()
        umask = os.umask(0o022)
        os.umask(umask)
        cwd = os.getcwd()
    except (OSError, AttributeError, ValueError):
        return None
    if stdio is None:
        return None
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(REPLY_TIMEOUT)  # a recorder stopped with a full backlog: run cold
    try:
        try:
            sock.connect(socket_name(facts))
        except OSError:
            absent = True
            return None
        try:
            if peer_uid(sock) != os.getuid():
                return None
            request = {"facts": facts, "argv": argv, "argv0": sys.argv[0] if sys.argv else "workbench",
                       "path0": None if sys.flags.safe_path or not sys.path else sys.path[0], "cwd": cwd,
                       "env": dict(os.environ), "umask": umask, "stdio": stdio}
            sock.sendall(frame(request))
            reply = read_message(sock)
            sock.settimeout(None)
        except (OSError, EOFError, ValueError):
            return None  # no pid, so no "go" was sent: no worker will start a run
        if not isinstance(reply, dict) or "pid" not in reply:
            return None  # refused (stale code, other facts): run cold
        return _follow(sock, int(reply["pid"]))
    finally:
        sock.close()


def _follow(sock: object, pid: int) -> int:
    """Wait for the worker's exit status, forwarding signals; the worker prints everything itself."""
    import signal

    received: list[int] = []

    def forward(number: int, _frame: object) -> None:
        received.append(number)
        try:
            os.kill(pid, number)
        except OSError:
            pass

    def stop(_number: int, _frame: object) -> None:  # Ctrl+Z: stop the worker with us
        try:
            os.kill(pid, signal.SIGSTOP)
        except OSError:
            pass
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)
        signal.signal(signal.SIGTSTP, stop)  # resumed (SIGCONT)
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass

    for name in _FORWARDED:
        signal.signal(getattr(signal, name), forward)
    signal.signal(signal.SIGTSTP, stop)
    import _socket

    fds = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in (0, 1, 2))
    try:  # stdin, stdout and stderr go with the go-ahead: only to a worker that is there
        sock.sendmsg([GO], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])  # type: ignore[attr-defined]
        reply = read_message(sock)
    except (OSError, EOFError, ValueError):
        reply = None
    if isinstance(reply, dict) and "exit" in reply:
        return int(reply["exit"])
    for number in received:  # the worker died of a signal we passed on: die of it too, as a cold run would
        if number != signal.SIGINT:
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)
    if received:
        return 130
    sys.stderr.write(f"error: the warm recorder's worker (pid {pid}) ended without an exit status; "
                     "'workbench runs' shows what it recorded (WORKBENCH_WARM=0 runs without it)\n")
    return 1


def start_recorder() -> None:
    """Start a warm recorder in the background for the next ``workbench run`` (after a cold one that
    found none, or when the TUI or a watcher starts). It runs with this interpreter's flags; one that
    finds its address taken exits before importing anything."""
    import subprocess

    if not sys.executable or not enabled(os.environ):
        return
    args = [sys.executable, *subprocess._args_from_interpreter_flags(), "-P", "-m",  # type: ignore[attr-defined]
            "workbench.cli.warm_server"]
    try:
        subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True, cwd="/")
    except OSError:
        pass
