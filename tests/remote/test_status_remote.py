"""``workbench status`` says ahead/behind against the default remote from local bookkeeping: ahead
counts what a push would send, behind is what the last pull or ``remote status`` listing found."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_workbench
from tests.remote.conftest import write_tree


def _status(root: Path) -> dict[str, object]:
    result = run_workbench(root, "status", "--json")
    assert result.returncode == 0, result.stderr
    remote = json.loads(result.stdout)["remote"]
    assert isinstance(remote, dict)
    return remote


def test_status_shows_ahead_and_behind_of_the_default_remote(tmp_path: Path) -> None:
    share, a, b = tmp_path / "share", tmp_path / "a", tmp_path / "b"
    share.mkdir()
    for root, files in ((a, {"a.txt": b"from a\n"}), (b, {"b.txt": b"from b\n"})):
        root.mkdir()
        write_tree(root, files)
        assert run_workbench(root, "init").returncode == 0
        assert run_workbench(root, "snapshot", "-m", "first").returncode == 0
        assert run_workbench(root, "remote", "add", "origin", share.as_uri()).returncode == 0

    before = _status(a)
    assert [before[k] for k in ("name", "ahead", "behind", "checked_at")] == ["origin", 1, None, None]
    assert "remote origin: 1 record(s) to push, behind unknown" in run_workbench(a, "status").stdout
    assert run_workbench(a, "push").returncode == 0
    assert _status(a)["ahead"] == 0

    assert run_workbench(b, "push").returncode == 0
    assert _status(a)["behind"] is None, "status must not contact the remote"
    assert run_workbench(a, "remote", "status").returncode == 0
    checked = _status(a)
    assert checked["behind"] == 1 and isinstance(checked["checked_at"], float)
    assert run_workbench(a, "pull").returncode == 0
    assert _status(a)["behind"] == 0


def test_status_without_a_remote_has_none(tmp_path: Path) -> None:
    write_tree(tmp_path, {"x.txt": b"x\n"})
    assert run_workbench(tmp_path, "init").returncode == 0
    result = run_workbench(tmp_path, "status", "--json")
    assert json.loads(result.stdout)["remote"] is None
