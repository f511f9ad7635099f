"""End to end: the real ``workbench`` in a tmux pane, driven by send-keys, read with capture-pane."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True, check=True).stdout


def _wait_for(session: str, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _capture(session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; the pane shows:\n{screen}")


def _wait_still(session: str, timeout: float = 60) -> str:
    """The pane once two captures 0.5 s apart agree (the screen has finished loading and drawing)."""
    deadline = time.monotonic() + timeout
    before = _capture(session)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _capture(session)
        if now == before:
            return now
        before = now
    raise AssertionError(f"the pane never settled; it shows:\n{before}")


def test_workbench_in_tmux(demo_root: Path) -> None:
    session = f"wb-e2e-{int(time.time() * 1000)}"
    command = f"cd {demo_root} && {sys.executable} -m workbench ui --screen runs --no-watch"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command], check=True)
    try:
        screen = _wait_for(session, "sgd-a1e-3-long")
        assert "forest-200" in screen and "8 runs" in screen
        # typed fast, in one go: the keys right after "/" must land in the filter box, not the table
        subprocess.run(["tmux", "send-keys", "-t", session, "/epochs>=30", "Enter"], check=True)
        screen = _wait_for(session, "1 runs")
        assert "filter: epochs>=30" in screen
        assert "sgd-a1e-3-long" in screen and "forest-200" not in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)
        _wait_for(session, "outputs snapshot")  # the run detail has loaded
        _wait_still(session)  # and drawn its chart and log
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        _wait_for(session, "1 runs")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            probe = subprocess.run(["tmux", "has-session", "-t", session], capture_output=True)
            alive = probe.returncode == 0
            if not alive or "Runs" not in _capture(session):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("q did not quit the workbench")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_workbench_in_a_folder_that_is_no_project_offers_to_make_it_one(tmp_path: Path) -> None:
    """As lazygit offers ``git init``: Enter makes the folder a project and opens the workbench;
    "n" leaves it as it was, with the one-line error."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "train.py").write_text("print('loss=0.5')\n")
    for answer, expected in (("n", "error: not a workbench project"), ("", "Overview")):
        session = f"wb-init-{int(time.time() * 1000)}"
        command = f"cd {folder} && {sys.executable} -m workbench ui --no-watch; sleep 60"
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "250", "-y", "30", command],
                       check=True)  # wide: the question names the folder's whole path, on one line
        try:
            _wait_for(session, "is not a workbench project. Make it one (workbench init)? [Y/n]")
            subprocess.run(["tmux", "send-keys", "-t", session, *([answer] if answer else []), "Enter"],
                           check=True)
            _wait_for(session, expected)
            assert (folder / ".workbench").is_dir() == (answer == "")
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
