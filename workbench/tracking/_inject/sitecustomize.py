"""Zero-code file capture for Python children of ``workbench run``.

The runner puts this folder first on the child's ``PYTHONPATH``, so the interpreter imports this
module at start-up as ``sitecustomize``. It then

* installs an audit hook that records each project file the process opens, as an ``input`` (read)
  or ``output`` (written) event in the events file named by ``WORKBENCH_EVENTS``, once per path and
  direction (a file read back after the process wrote it is an output only: the run made it); files
  outside the project, in ``.workbench/``, under the interpreter's prefixes or the standard library
  (symlinks resolved), in site-packages, and names that are not plain files (import machinery's
  ``__editable__...__path_hook__`` probes, folders, devices) are ignored;
* reports the interpreter's facts (python version, executable, installed packages) at exit, once
  per process tree. Listing the installed distributions costs tens of milliseconds, so the list
  of the folders on ``sys.path`` outside the project is cached per interpreter in
  ``WORKBENCH_ENV_CACHE`` (the local runner points it at ``~/.cache/workbench/pyenv``; unset:
  ``<project>/.workbench/pyenv``), keyed by the interpreter, its version and those folders'
  mtimes (installing, upgrading or removing a package changes its folder's mtime). The project's
  own folders are scanned each time (one ``scandir``). A run in an unchanged environment pays a
  few ``stat`` calls and one small file read;
* records the arguments the process parses with :mod:`argparse` as params (``_workbench_argparse``);
* when ``WORKBENCH_WRITES`` names a file (a plain local run in the shared project folder), records
  the SHA-256 of each project file the process writes when it closes it (the sibling module
  ``_workbench_writes``), which the runner compares with the project's file when the run ends;
* when ``WORKBENCH_CAPTURE_MLFLOW`` is ``1`` and ``MLFLOW_TRACKING_URI`` is unset, points MLflow at
  a file store beside the events file (a Docker job's run folder), which the runner reads after the
  job (``workbench.tracking.libcapture``); a pod's (events on stdout) goes to the temporary folder
  and is printed as marked events at exit (``workbench.tracking.capture_pod``);
* removes its folder from ``sys.path`` again and imports the ``sitecustomize`` that would have run
  without it, so an existing one keeps working.

It only uses the standard library (the child may run in another environment than Workbench) and
costs one string compare per audit event that is not a file open.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # the child pays nothing for typing at run time
    from collections.abc import Callable
    from typing import Any

_EVENTS = "WORKBENCH_EVENTS"
_PROJECT = "WORKBENCH_PROJECT"
_SENT = "WORKBENCH_ENV_REPORTED"
_CACHE = "WORKBENCH_ENV_CACHE"
_WRITES = "WORKBENCH_WRITES"
_MLFLOW = "WORKBENCH_CAPTURE_MLFLOW"
_MLFLOW_URI = "MLFLOW_TRACKING_URI"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
CACHE_DIRNAME = "pyenv"
"""Name of the folder that holds cached environment reports (in the user's cache, or the
project's ``.workbench/``)."""


def _dumps(event: dict[str, Any]) -> bytes:
    import json

    return (json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _file_event(kind: str, path: str) -> bytes:
    """``{"e":kind,"path":path,"src":"audit"}`` without importing json for ordinary paths."""
    if path.isprintable() and '"' not in path and "\\" not in path:
        return f'{{"e":"{kind}","path":"{path}","src":"audit"}}\n'.encode()
    return _dumps({"e": kind, "path": path, "src": "audit"})


def _ignored_prefixes(root: str) -> tuple[str, ...]:
    """Folders whose files are never a run's inputs or outputs: the store, the interpreter's
    prefixes (a venv inside the project included), the standard library, as written and with
    symlinks resolved."""
    prefixes = {os.path.join(root, ".workbench") + os.sep}
    bases = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.__file__)]
    for base in bases:
        if base:
            for form in (os.path.normpath(base), os.path.realpath(base)):
                prefixes.add(form + os.sep)
    return tuple(sorted(prefixes))


_MACHINERY = ("/site-packages/", "/dist-packages/", "/__pycache__/", "/__editable__")


def _is_data_file(full: str, wrote: bool) -> bool:
    """Whether an opened name is a plain file a run can read or write. Import machinery opens
    names that are no files at all (``__editable__.*.__path_hook__`` entries of ``sys.path``
    probed as zip archives, missing candidates); folders, devices and FIFOs are no data either.
    A name opened for writing may not exist yet (the open creates it)."""
    import stat

    if full.endswith("__path_hook__") or any(part in full for part in _MACHINERY):
        return False
    try:
        mode = os.stat(full).st_mode
    except OSError:
        return wrote
    return stat.S_ISREG(mode)


def install_file_hook(events_path: str, root: str) -> Callable[[], None]:
    """Record project files this process opens as input/output events in ``events_path``.

    Returns a function that stops the recording (audit hooks cannot be removed, only silenced)."""
    root = os.path.normpath(root)
    inside = root + os.sep
    ignored = _ignored_prefixes(root)
    seen: set[tuple[str, bool]] = set()
    """(full path, written?) reported so far; a forked worker (a DataLoader's) inherits it."""
    settled: set[tuple[str, bool, bool]] = set()
    """(path as opened, writes?, reads?) already decided since the last chdir: a file opened again
    (a dataset read every epoch) costs a set lookup, not a getcwd and a normpath."""
    state = {"busy": False}
    fd = os.open(events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.set_inheritable(fd, False)

    def report(full: str, wrote: bool) -> None:
        if not full.startswith(inside) or full.startswith(ignored):
            return
        if os.path.realpath(full).startswith(ignored) or not _is_data_file(full, wrote):
            return
        os.write(fd, _file_event("output" if wrote else "input", full))

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "os.chdir":  # os.chdir and os.fchdir: relative paths name other files now
            settled.clear()
            return
        if event != "open" or state["busy"]:
            return
        state["busy"] = True
        try:
            path, mode, flags = args
            if not isinstance(path, str):
                if isinstance(path, bytes):
                    path = os.fsdecode(path)
                elif hasattr(path, "__fspath__"):
                    path = os.fspath(path)
                else:
                    return
            if isinstance(mode, str):
                wrote = any(c in mode for c in "wax+")
                # what the file held is read: "r", and "r+"/"a+" (not "w+"/"x+": they start empty)
                read = "r" in mode or ("a" in mode and "+" in mode)
            else:
                flags = flags if isinstance(flags, int) else 0
                wrote = bool(flags & _WRITE_FLAGS)
                read = not (flags & os.O_WRONLY) and not (wrote and flags & os.O_TRUNC)
            if (path, wrote, read) in settled:
                return
            settled.add((path, wrote, read))
            full = os.path.normpath(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
            if wrote and (full, True) not in seen:
                if read and (full, False) not in seen:  # r+/a+: read before this process wrote it
                    seen.add((full, False))
                    report(full, False)
                seen.add((full, True))
                report(full, True)
            elif read and not wrote and (full, False) not in seen and (full, True) not in seen:
                # a file read back after this process wrote it is its own output, not an input
                seen.add((full, False))
                report(full, False)
        except Exception:
            pass
        finally:
            state["busy"] = False

    sys.addaudithook(hook)

    def stop() -> None:
        state["busy"] = True

    return stop


def environment_facts(path: list[str] | None = None) -> dict[str, Any]:
    """This interpreter: version, executable, installed distributions (name -> version) found on
    ``path`` (default: ``sys.path``)."""
    import platform
    from importlib import metadata

    packages: dict[str, str] = {}
    found = metadata.distributions() if path is None else metadata.distributions(path=path)
    for dist in found:
        try:
            name = dist.metadata["Name"]
        except Exception:
            continue
        if name:
            packages[str(name)] = str(dist.version)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "packages": _sorted(packages),
    }


def _sorted(packages: dict[str, str]) -> dict[str, str]:
    return dict(sorted(packages.items(), key=lambda item: item[0].lower()))


def user_cache_dir() -> str:
    """Where the local runner and a script's own run keep environment reports (one per
    interpreter, shared by every project of this user)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "workbench", CACHE_DIRNAME)


def ensure_user_cache_dir() -> str | None:
    """:func:`user_cache_dir`, created if need be; None where it cannot be (a read-only home)."""
    folder = user_cache_dir()
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    return folder


def _search_path(root: str) -> tuple[list[str], list[str]]:
    """The folders on ``sys.path`` outside the project (and site-packages inside it, such as a
    ``.venv``), and the project's own folders (the script's folder, a ``src/``)."""
    inside = os.path.normpath(root) + os.sep if root else ""
    outside: list[str] = []
    within: list[str] = []
    for entry in sys.path:
        full = os.path.abspath(entry or ".")
        mine = inside and (full + os.sep).startswith(inside) and "-packages" not in full
        (within if mine else outside).append(full)
    return outside, within


def _environment_key(folders: list[str]) -> str:
    """What the package list of ``folders`` depends on, cheaply: the interpreter and each folder's
    mtime (installing, upgrading or removing a package changes its folder)."""
    parts = [sys.executable, sys.version, sys.prefix, sys.exec_prefix]
    for full in folders:
        try:
            parts.append(f"{full}@{os.stat(full).st_mtime_ns}")
        except OSError:
            continue
    return "\0".join(parts).replace("\n", "\\n")


def _project_packages(folders: list[str]) -> dict[str, str]:
    """Distributions in the project's own folders on ``sys.path``: almost always none, which one
    ``scandir`` each tells without importing ``importlib.metadata``."""
    for folder in folders:
        try:
            with os.scandir(folder) as found:
                if any(item.name.endswith((".dist-info", ".egg-info")) for item in found):
                    packages: dict[str, str] = environment_facts(folders)["packages"]
                    return packages
        except OSError:
            continue
    return {}


def _cache_file(folder: str) -> str:
    import zlib

    name = f"{zlib.crc32(f'{sys.executable}|{sys.prefix}'.encode(errors='replace')):08x}.env"
    return os.path.join(folder, name)


def _read_cached(path: str, key: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    head, _, line = b"".join(chunks).partition(b"\n")
    if head.decode(errors="replace") != key or not line.endswith(b"\n"):
        return None
    return line


def _write_cached(path: str, key: str, line: bytes) -> None:
    folder = os.path.dirname(path)
    if not os.path.isdir(os.path.dirname(folder)):  # e.g. no .workbench/ in a container checkout
        return
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, key.encode(errors="replace") + b"\n" + line)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def environment_event(root: str = "", cache_dir: str | None = None) -> bytes:
    """The ``env`` event line of this interpreter. The packages outside the project come from the
    cache in ``cache_dir`` (default: ``WORKBENCH_ENV_CACHE``, else ``<root>/.workbench/pyenv``)
    while those folders are unchanged; the project's own folders are looked at every time.
    Without ``root``: listed afresh, no cache."""
    if not root:
        return _dumps({"e": "env", "v": environment_facts()})
    outside, within = _search_path(root)
    key = _environment_key(outside)
    folder = cache_dir or os.environ.get(_CACHE) or os.path.join(root, ".workbench", CACHE_DIRNAME)
    path = _cache_file(folder)
    line = _read_cached(path, key)
    if line is None:
        line = _dumps({"e": "env", "v": environment_facts(outside)})
        try:
            _write_cached(path, key, line)
        except OSError:
            pass
    extra = _project_packages(within)
    if extra:
        import json

        event = json.loads(line)
        event["v"]["packages"] = _sorted({**event["v"]["packages"], **extra})
        line = _dumps(event)
    return line


def report_environment_at_exit(events_path: str, root: str = "") -> None:
    """Append an ``env`` event when this interpreter exits (once per process tree)."""
    if os.environ.get(_SENT):
        return
    os.environ[_SENT] = "1"
    import atexit

    def send() -> None:
        try:
            data = environment_event(root)
            fd = os.open(events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except Exception:
            pass

    atexit.register(send)


def _chain() -> None:
    """Import the sitecustomize that this one shadows, if there is one."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    mine = sys.modules.pop("sitecustomize", None)
    try:
        __import__("sitecustomize")
    except ImportError:
        pass
    except Exception as exc:  # an existing sitecustomize that fails should say so, as it would
        sys.stderr.write(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{exc!r}\n")
    finally:
        if mine is not None:
            sys.modules["sitecustomize"] = mine


def _start_write_tracking(root: str) -> None:
    """Record what each written project file held at close (``_workbench_writes``, found beside
    this module while its folder is still on ``sys.path``)."""
    writes = os.environ.get(_WRITES, "")
    if writes:
        try:
            import importlib

            module = importlib.import_module("_workbench_writes")
            module.install_write_tracking(writes, root, _ignored_prefixes(os.path.normpath(root)), _MACHINERY)
        except Exception:
            pass


def _point_mlflow(events: str) -> None:
    """Send MLflow to a file store of the run's own (the runner asked for it: the user set no
    tracking URI). Beside the events file when there is one; otherwise (a pod, whose only channel
    is its log) in the temporary folder, sent as marked event lines when this process exits.
    Environment writes only; MLflow is not imported."""
    environ = os.environ
    if environ.get(_MLFLOW) != "1" or not events or environ.get(_MLFLOW_URI):
        return
    environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    if not events.startswith("@"):
        environ[_MLFLOW_URI] = os.path.join(os.path.dirname(events), "mlflow")
        return
    try:
        from workbench.tracking import capture_pod
    except ImportError:  # the package is not importable here: leave MLflow alone
        del environ["MLFLOW_ALLOW_FILE_STORE"]
        return
    folder = capture_pod.store_folder(environ.get("WORKBENCH_RUN_ID", ""))
    environ[_MLFLOW_URI] = folder
    import atexit

    def send() -> None:
        try:
            capture_pod.send(folder)
        except Exception:
            pass

    atexit.register(send)


def _main() -> None:
    events = os.environ.get(_EVENTS, "")
    root = os.environ.get(_PROJECT, "")
    _point_mlflow(events)
    if events and os.environ.get("WORKBENCH_RUN_ID"):
        try:  # the parsed arguments of argparse as params: a module beside this one
            from _workbench_argparse import install_argparse_hook

            install_argparse_hook()
        except Exception:
            pass
    if events and root and not events.startswith("@"):
        try:
            install_file_hook(events, root)
            report_environment_at_exit(events, root)
        except Exception:
            pass
        _start_write_tracking(root)
    _chain()


if __name__ == "sitecustomize":
    _main()
