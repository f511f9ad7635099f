"""Zero-code file capture for Python children of ``workbench run``.

The runner puts this folder first on the child's ``PYTHONPATH``, so the interpreter imports this
module at start-up as ``sitecustomize``. It then

* installs an audit hook that records each project file the process opens, as an ``input`` (read)
  or ``output`` (written) event in the events file named by ``WORKBENCH_EVENTS``, once per path and
  direction; files outside the project, in ``.workbench/`` and in site-packages are ignored;
* reports the interpreter's facts (python version, executable, installed packages) at exit, once
  per process tree;
* removes its folder from ``sys.path`` again and imports the ``sitecustomize`` that would have run
  without it, so an existing one keeps working.

It only uses the standard library (the child may run in another environment than Workbench) and
costs one string compare per audit event that is not a file open.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

_EVENTS = "WORKBENCH_EVENTS"
_PROJECT = "WORKBENCH_PROJECT"
_SENT = "WORKBENCH_ENV_REPORTED"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _dumps(event: dict[str, Any]) -> bytes:
    import json

    return (json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _ignored_prefixes(root: str) -> tuple[str, ...]:
    prefixes = {os.path.join(root, ".workbench") + os.sep}
    for base in (sys.prefix, sys.base_prefix, sys.exec_prefix):
        if base:
            prefixes.add(os.path.normpath(base) + os.sep)
    return tuple(sorted(prefixes))


def install_file_hook(events_path: str, root: str) -> Callable[[], None]:
    """Record project files this process opens as input/output events in ``events_path``.

    Returns a function that stops the recording (audit hooks cannot be removed, only silenced)."""
    root = os.path.normpath(root)
    inside = root + os.sep
    ignored = _ignored_prefixes(root)
    seen: set[tuple[str, bool]] = set()
    state = {"busy": False}
    fd = os.open(events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.set_inheritable(fd, False)

    def report(path: str, wrote: bool) -> None:
        full = os.path.normpath(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
        if not full.startswith(inside) or full.startswith(ignored):
            return
        if "/site-packages/" in full or "/dist-packages/" in full or "/__pycache__/" in full:
            return
        os.write(fd, _dumps({"e": "output" if wrote else "input", "path": full, "src": "audit"}))

    def hook(event: str, args: tuple[Any, ...]) -> None:
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
                read = "r" in mode or "+" in mode
            else:
                flags = flags if isinstance(flags, int) else 0
                wrote = bool(flags & _WRITE_FLAGS)
                read = not (flags & os.O_WRONLY)
            for direction in ((True,) if wrote else ()) + ((False,) if read else ()):
                key = (path, direction)
                if key not in seen:
                    seen.add(key)
                    report(path, direction)
        except Exception:
            pass
        finally:
            state["busy"] = False

    sys.addaudithook(hook)

    def stop() -> None:
        state["busy"] = True

    return stop


def environment_facts() -> dict[str, Any]:
    """This interpreter: version, executable, installed distributions (name -> version)."""
    import platform
    from importlib import metadata

    packages: dict[str, str] = {}
    for dist in metadata.distributions():
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
        "packages": dict(sorted(packages.items(), key=lambda item: item[0].lower())),
    }


def report_environment_at_exit(events_path: str) -> None:
    """Append an ``env`` event when this interpreter exits (once per process tree)."""
    if os.environ.get(_SENT):
        return
    os.environ[_SENT] = "1"
    import atexit

    def send() -> None:
        try:
            data = _dumps({"e": "env", "v": environment_facts()})
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
        import importlib

        importlib.import_module("sitecustomize")
    except ImportError:
        pass
    except Exception as exc:  # an existing sitecustomize that fails should say so, as it would
        sys.stderr.write(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{exc!r}\n")
    finally:
        if mine is not None:
            sys.modules["sitecustomize"] = mine


def _main() -> None:
    events = os.environ.get(_EVENTS, "")
    root = os.environ.get(_PROJECT, "")
    if events and root and not events.startswith("@"):
        try:
            install_file_hook(events, root)
            report_environment_at_exit(events)
        except Exception:
            pass
    _chain()


if __name__ == "sitecustomize":
    _main()
