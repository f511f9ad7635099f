"""A hand-crafted snapshot (as a shared remote could deliver) cannot touch the project's own state,
plant VCS hooks, create setuid files or write outside the project; the rest of it still restores."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.crafted import craft_snapshot
from workbench.core.workspace import Workspace
from workbench.errors import UnsafePathError, WorkbenchError
from workbench.versioning.restore import RestoreIncomplete
from workbench.versioning.trees import tree_hash


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


LIVE = ("workbench.db-wal", "workbench.db-shm", "index")
"""Store files SQLite and the stat index rewrite on every scan: compared by name only."""


def _state(ws: Workspace) -> dict[str, str]:
    """Hashes of the files of the store folder (its config, its database) and of .git."""
    found: dict[str, str] = {}
    for top in (ws.root / ".workbench", ws.root / ".git"):
        for path in sorted(top.rglob("*")) if top.exists() else []:
            rel = path.relative_to(ws.root)
            if path.is_file() and "cache" not in rel.parts:
                found[rel.as_posix()] = "live" if path.name in LIVE else _digest(path)
    return found


def _hostile(outside: Path) -> dict[str, object]:
    return {
        ".workbench": {"config.toml": b"[versioning]\ncache = '/tmp/stolen'\n",
                       "workbench.db": b"not a database any more"},
        ".git": {"hooks": {"pre-commit": ("f", 0o755, b"#!/bin/sh\ntouch /tmp/pwned\n")}},
        ".GIT": {"config": b"[core]\n\tfsmonitor = touch /tmp/pwned\n"},
        "sub": {".git": {"config": b"[core]\n\tfsmonitor = evil\n"}, "ok.txt": b"sub ok"},
        "suid": ("f", 0o4755, b"#!/bin/sh\nid\n"),
        "sgid": ("f", 0o2750, b"group"),
        "sticky": ("f", 0o1777, b"sticky"),
        "gdir": ("d", 0o2777, {"inner.txt": b"in a setgid folder"}),
        "etc": ("l", "/etc"),
        "out": ("l", str(outside)),
        "up": ("l", "../../.."),
        "deep": {"up": ("l", ".."), "esc": ("l", "up/.."), "fine": ("l", "../good.txt")},
        "gitlink": ("l", "sub/.git"),
        "good.txt": b"kept",
    }


def test_a_crafted_tree_cannot_touch_the_store_vcs_or_host(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws.root / ".git" / "hooks").mkdir(parents=True)
    (ws.root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (ws.root / "good.txt").write_text("before")
    ws.versions.snapshot("clean")
    ws.runs.list()  # the tracking tables exist
    before = _state(ws)
    db_before = _digest(ws.paths.db)
    snap = craft_snapshot(ws, _hostile(outside))

    with pytest.raises(RestoreIncomplete) as caught:
        ws.versions.restore(snap, force=True)
    err = caught.value
    assert isinstance(err, UnsafePathError)
    refused = {r.path: r.reason for r in err.refused}
    for path in (".workbench", ".workbench/config.toml", ".workbench/workbench.db", ".git",
                 ".git/hooks/pre-commit", ".GIT", ".GIT/config", "sub/.git", "sub/.git/config",
                 "etc", "out", "up", "gitlink", "deep/esc"):
        assert path in refused, (path, sorted(refused))
    assert refused[".git/hooks/pre-commit"] == "inside .git/"
    # One wording wherever it triggers, and one line for the user.
    assert ("refused to write '.git/hooks/pre-commit': inside .git/ (a job or snapshot may not write there)"
            in [r.message for r in err.refused])
    assert "\n" not in err.one_line() and "and" in err.message

    # The store and the VCS folder are byte for byte what they were.
    assert _state(ws) == before
    assert _digest(ws.paths.db) == db_before
    assert not (ws.root / ".git" / "hooks" / "pre-commit").exists()
    assert not (ws.root / "sub" / ".git").exists()
    # Nothing outside the project, no link leading out of it.
    assert list(outside.iterdir()) == []
    for name in ("etc", "out", "up", "gitlink"):
        assert not os.path.lexists(ws.root / name)
    assert not os.path.lexists(ws.root / "deep" / "esc")  # made, found escaping through deep/up, removed
    assert os.readlink(ws.root / "deep" / "fine") == "../good.txt"
    # The rest was restored, with clean modes.
    assert (ws.root / "good.txt").read_text() == "kept"
    assert (ws.root / "sub" / "ok.txt").read_text() == "sub ok"
    assert stat.S_IMODE((ws.root / "suid").stat().st_mode) == 0o755
    assert stat.S_IMODE((ws.root / "sgid").stat().st_mode) == 0o750
    assert stat.S_IMODE((ws.root / "sticky").stat().st_mode) == 0o777
    assert not (ws.root / "gdir").stat().st_mode & (stat.S_ISGID | stat.S_ISUID | stat.S_ISVTX)
    assert (ws.root / "gdir" / "inner.txt").read_text() == "in a setgid folder"
    # The project still opens and still knows its history.
    assert [s.message for s in ws.versions.log()][-1] == "clean"


def test_a_link_planted_earlier_is_never_followed(ws: Workspace, tmp_path: Path) -> None:
    """A snapshot that first plants ``link -> outside`` and then one with ``link/passwd``: the
    first link is refused, and a link planted by hand is replaced, never written through."""
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    first = craft_snapshot(ws, {"link": ("l", str(outside))})
    with pytest.raises(RestoreIncomplete):
        ws.versions.restore(first, force=True)
    assert not os.path.lexists(ws.root / "link")
    os.symlink(outside, ws.root / "link")  # as if something else had made it
    ws.versions.store.ensure_dirs()
    second = craft_snapshot(ws, {"link": {"passwd": b"hacker::0:0\n"}})
    ws.versions.restore(second, force=True)
    assert (outside / "passwd").read_text() == "root:x:0:0\n"
    assert not (ws.root / "link").is_symlink()
    assert (ws.root / "link" / "passwd").read_text() == "hacker::0:0\n"


@pytest.mark.parametrize("name", ["..", "", ".", "a/b", "/etc", "nul\0x"])
def test_trees_with_unsafe_names_are_refused_whole(ws: Workspace, tmp_path: Path, name: str) -> None:
    """``../x``, an absolute path, empty, ``.``, NUL: such a tree object is refused before anything
    is written (the object itself is malformed), with a one-line error."""
    store = ws.versions.store
    store.ensure_dirs()
    blob, _ = store.put_bytes(b"evil")
    data = json.dumps([[name, "f", 420, 4, blob], ["z.txt", "f", 420, 4, blob]]).encode()
    digest, _ = store.put_bytes(data)
    assert digest == tree_hash(data)
    snap = craft_snapshot(ws, {})
    with ws.atomic() as db:
        db.execute("UPDATE snapshots SET root_tree = ? WHERE id = ?", (digest, snap))
    before = sorted(p.name for p in ws.root.iterdir())
    with pytest.raises(WorkbenchError) as caught:
        ws.versions.restore(snap, force=True)
    assert "\n" not in caught.value.one_line()
    assert sorted(p.name for p in ws.root.iterdir()) == before
    assert not (tmp_path / "x").exists() and not (tmp_path / "evil").exists()


def test_the_cli_shows_refusals_on_one_line_and_exits_2(ws: Workspace) -> None:
    snap = craft_snapshot(ws, {".git": {"hooks": {"post-checkout": b"evil"}}, "a.txt": b"a"})
    proc = subprocess.run([sys.executable, "-m", "workbench", "restore", snap[:12], "--force"],
                          cwd=ws.root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "refused to write '.git/hooks/post-checkout': inside .git/" in lines[0]
    assert (ws.root / "a.txt").read_text() == "a"
    assert not (ws.root / ".git").exists()
