"""The status seal: a clean ``status`` seals the folder, the next one answers from the seal without
opening the store, and every kind of change (bytes, mode, a new, deleted or renamed file, a new
folder, a folder swapped for a link, the ignore file, a new snapshot, any write to the database)
breaks it, so ``status`` scans and reports it; the C and the Python stat loops alike. An entry
changed within the racy margin is never sealed; a damaged seal, or a seal of another folder, is
ignored; ``WORKBENCH_STATUS_SEAL=0`` turns seals off."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_workbench
from workbench.versioning import seal, state
from workbench.versioning.worktree import _Dir


def _settled(root: Path) -> None:
    """Wait until every entry of ``root`` is older than the racy margin (a condition, not a sleep of
    a fixed length: the margin is measured against the entries' own change times)."""
    newest = max(max(st.st_mtime_ns, st.st_ctime_ns)
                 for st in (os.lstat(p) for p in [root, *root.rglob("*")]))
    while time.time_ns() <= newest + seal.COARSE_MARGIN_NS * (newest % seal.NS == 0) + seal.FINE_MARGIN_NS:
        time.sleep(0.02)


def _status(root: Path, *args: str) -> str:
    done = run_workbench(root, "status", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(params=["c", "python"])
def sealed(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project of a few folders, snapshotted and sealed by a clean ``status``; the cwd is its root
    and the seal is checked by the C loop or the Python one."""
    if request.param == "python":
        monkeypatch.setenv("WORKBENCH_PURE_PYTHON", "1")
    else:
        from workbench.versioning import _sealcheck  # noqa: F401 - built by this checkout's install
    root = tmp_path / "project"
    for folder in ("src", "data/raw", "data/clean"):
        (root / folder).mkdir(parents=True)
    (root / "src" / "train.py").write_text("print('train')\n")
    (root / "data" / "raw" / "a.csv").write_text("x,y\n1,2\n")
    (root / "data" / "clean" / "b.csv").write_text("x,y\n3,4\n")
    (root / "README.md").write_text("# p\n")
    assert run_workbench(root, "init").returncode == 0
    assert run_workbench(root, "snapshot", "-m", "base").returncode == 0
    _settled(root)
    first = _status(root, "--no-watcher")
    assert first.startswith("nothing changed since snapshot")
    assert (root / ".workbench" / seal.SEAL_NAME).exists()
    monkeypatch.chdir(root)
    assert seal.answer() == first
    yield root


def _same_size_edit(root: Path) -> None:
    (root / "data" / "raw" / "a.csv").write_text("x,y\n1,3\n")


def _edit_keeping_mtime(root: Path) -> None:
    path = root / "src" / "train.py"
    before = path.stat()
    path.write_text("print('TRAIN')\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # only the ctime tells


def _chmod(root: Path) -> None:
    (root / "src" / "train.py").chmod(0o755)


def _new_file(root: Path) -> None:
    (root / "data" / "clean" / "c.csv").write_text("new\n")


def _delete(root: Path) -> None:
    (root / "data" / "raw" / "a.csv").unlink()


def _rename(root: Path) -> None:
    (root / "data" / "raw" / "a.csv").rename(root / "data" / "raw" / "z.csv")


def _new_folder(root: Path) -> None:
    (root / "data" / "raw" / "more").mkdir()
    (root / "data" / "raw" / "more" / "m.csv").write_text("m\n")


def _folder_to_link(root: Path) -> None:
    shutil.move(root / "data" / "clean", root.parent / "elsewhere")
    (root / "data" / "clean").symlink_to(root.parent / "elsewhere")


def _ignore_file(root: Path) -> None:
    (root / ".workbenchignore").write_text("*.csv\n")


CHANGES: dict[str, Callable[[Path], None]] = {
    "same-size edit": _same_size_edit, "edit keeping the mtime": _edit_keeping_mtime, "chmod": _chmod,
    "new file": _new_file, "deleted file": _delete, "renamed file": _rename, "new folder": _new_folder,
    "folder swapped for a link": _folder_to_link, "ignore file": _ignore_file,
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_every_change_breaks_the_seal(sealed: Path, change: str) -> None:
    CHANGES[change](sealed)
    assert seal.answer() is None
    shown = _status(sealed, "--no-watcher")
    assert "change" in shown and not shown.startswith("nothing changed"), shown


def test_a_new_snapshot_or_any_database_write_breaks_the_seal(sealed: Path) -> None:
    done = run_workbench(sealed, "run", "--", sys.executable, "-c", "pass")  # a run: rows in the database
    assert done.returncode == 0, done.stderr
    assert seal.answer() is None
    _new_file(sealed)
    assert run_workbench(sealed, "snapshot", "-m", "two").returncode == 0
    _settled(sealed)
    again = _status(sealed)
    assert again.startswith("nothing changed since snapshot") and seal.answer() == again  # sealed anew
    (sealed / ".workbench" / "HEAD").write_text((sealed / ".workbench" / "HEAD").read_text())
    assert seal.answer() is None  # HEAD rewritten: what it names is not trusted from the seal


def test_the_sealed_answer_opens_no_store(sealed: Path) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "workbench", "status"], cwd=sealed,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("nothing changed since snapshot"), done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "workbench.versioning.seal" in imported
    assert not {"sqlite3", "workbench.core.workspace", "workbench.versioning.worktree"} & imported


def test_a_damaged_seal_or_one_of_another_folder_is_ignored(sealed: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(sealed, copy, symlinks=True)
    monkeypatch.chdir(copy)
    assert seal.answer() is None  # the seal names the first folder
    monkeypatch.chdir(sealed)
    path = sealed / ".workbench" / seal.SEAL_NAME
    whole = path.read_bytes()
    for damaged in (whole[:-3], whole[:40], b"", whole.replace(b"train.py", b"trainXpy")):
        path.write_bytes(damaged)
        assert seal.answer() is None
        assert _status(sealed).startswith("nothing changed since snapshot")
    assert seal.answer() is not None  # the scan sealed it again


def test_seals_can_be_turned_off(sealed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_STATUS_SEAL", "0")
    assert seal.answer() is not None and seal.main(["status"]) is None
    (sealed / ".workbench" / seal.SEAL_NAME).unlink()
    assert _status(sealed).startswith("nothing changed since snapshot")
    assert not (sealed / ".workbench" / seal.SEAL_NAME).exists()


def test_an_entry_changed_within_the_racy_margin_is_not_sealed(tmp_path: Path) -> None:
    (tmp_path / ".workbench").mkdir()
    (tmp_path / "f.txt").write_text("f")
    st = os.lstat(tmp_path / "f.txt")
    folder = os.lstat(tmp_path)
    node = _Dir("")
    node.stat = folder.st_size, folder.st_mtime_ns, folder.st_ctime_ns, folder.st_ino
    node.files["f.txt"] = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, 0o644, "0" * 64]
    material = seal.Material(str(tmp_path))  # the scan starts right after the file was written
    assert not material.write([node], "nothing changed since snapshot x\n")
    assert not (tmp_path / ".workbench" / seal.SEAL_NAME).exists()
    later = seal.Material(str(tmp_path))
    newest = max(st.st_mtime_ns, st.st_ctime_ns, folder.st_mtime_ns, folder.st_ctime_ns)
    later.started_ns = newest + 2 * seal.NS
    assert later.write([node], "nothing changed since snapshot x\n")


def test_the_margins_are_the_stat_index_margins() -> None:
    assert (seal.NS, seal.FINE_MARGIN_NS, seal.COARSE_MARGIN_NS) == (
        state.NS, state.FINE_MARGIN_NS, state.COARSE_MARGIN_NS)


def test_status_is_right_after_every_quick_edit(sealed: Path) -> None:
    """Same-size rewrites (back to HEAD's bytes or not) each followed at once by ``status``: the
    answer always matches the file's bytes, however close the edit came to the seal's scan."""
    path = sealed / "data" / "raw" / "a.csv"
    head = path.read_bytes()
    other = head.replace(b"2", b"9")
    assert len(other) == len(head) and other != head
    for i in range(16):
        content = other if i % 3 else head
        path.write_bytes(content)
        shown = _status(sealed)
        if content == head:
            assert shown.startswith("nothing changed since snapshot"), (i, shown)
        else:
            assert "modified" in shown and "a.csv" in shown, (i, shown)
        if i % 4 == 3:  # now and then, let the folder settle so that a seal is written and then broken
            _settled(sealed)
            assert _status(sealed) == shown
