"""Fixtures for the TUI tests: the deterministic demo project (real runs), copied per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.worker import WorkerCancelled

from workbench.core.workspace import Workspace

pytest.importorskip("sklearn", reason="the demo project trains scikit-learn models")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated once per session (about 15 s): real runs through ws.runs.execute, fixed ids and times."""
    from workbench.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("template") / "digits-demo", deterministic=True)


@pytest.fixture
def demo_root(demo_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    root = home / "digits-demo"
    shutil.copytree(demo_template, root, symlinks=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(root)
    yield root
    os.environ.pop("TZ", None)
    time.tzset()


def wait_for_worker_threads(timeout: float = 15.0) -> None:
    """Let the app's thread workers finish their query before the Workspace closes its connections.

    ``App.run()`` does this itself (``asyncio.run`` shuts the default executor down, joining its
    threads); under pytest-asyncio the loop outlives the test, and closing the connections under a
    query still running in a worker thread crashed the interpreter (a segfault in sqlite3).
    """
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name.startswith("asyncio_") and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


@pytest.fixture
def ws(project_dir: Path) -> Iterator[Workspace]:
    """The suite's fresh project (tests/conftest.py), closed only after the TUI's workers are done."""
    workspace, _ = Workspace.init(project_dir)
    yield workspace
    wait_for_worker_threads()
    workspace.close()


@pytest.fixture
def demo_ws(demo_root: Path) -> Iterator[Workspace]:
    ws = Workspace.open(demo_root)
    yield ws
    wait_for_worker_threads()
    ws.close()


def demo_now() -> float:
    from workbench.demo import time_of_demo

    return time_of_demo()


def make_app(ws: Workspace, **kwargs: object):  # type: ignore[no-untyped-def]
    from workbench.ui.app import WorkbenchApp

    options: dict[str, object] = {"watch": False, "clock": demo_now, "gpu_probe": False}
    options.update(kwargs)
    return WorkbenchApp(ws, **options)  # type: ignore[arg-type]


async def settle(pilot, seconds: float = 0.3, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Let workers finish and messages land: until three pauses in a row saw no loading worker.

    A screen loads in chains (a worker's result starts the next worker), so a fixed number of rounds
    is not enough on a loaded machine; a quiet stretch is."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3:
        finite = [w for w in pilot.app.workers
                  if w.name not in ("log-tail", "watcher", "launch") and not w.is_finished]
        if finite:
            quiet = 0
            with contextlib.suppress(WorkerCancelled):  # a newer query replaced an older one
                await pilot.app.workers.wait_for_complete(finite)
        else:
            quiet += 1
        assert time.monotonic() < deadline, f"the app kept loading for {timeout:.0f} s"
        await pilot.pause(seconds / 3)


async def wait_for(pilot, check: Callable[[], bool], what: str = "the condition",  # type: ignore[no-untyped-def]
                   timeout: float = 60.0, seen: Callable[[], None] | None = None) -> None:
    """Poll ``check`` while the app processes its messages; fail only after a generous deadline.

    Tests run on loaded machines: never assert right after a fixed pause, wait for what should happen.
    ``seen`` (optional) is called on every poll, to note intermediate states."""
    deadline = time.monotonic() + timeout
    while True:
        if seen is not None:
            seen()
        if check():
            return
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        await pilot.pause(0.05)
