"""The store commands as a user types them: --json documents, tables, errors as one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_workbench


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    assert run_workbench(root, "init").returncode == 0
    (root / "notes.txt").write_text("line 1\nline 2\n")
    (root / "data").mkdir()
    (root / "data" / "x.csv").write_text("a,b\n1,2\n")
    return root


def test_snapshot_status_log_diff_cat_json(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = _project(tmp_path)
    first = cli(root, "snapshot", "-m", "first", "--json")
    assert first.code == 0
    snap = json.loads(first.out)
    assert {"id", "short_id", "created_at", "kind", "message", "files", "bytes", "new_bytes",
            "created", "skipped"} <= set(snap)
    assert snap["files"] == 2 and snap["message"] == "first"

    (root / "notes.txt").write_text("line 1\nline two\n")
    (root / "data" / "x.csv").unlink()
    status = json.loads(cli(root, "status", "--json").out)
    assert status["snapshot"] == snap["id"]
    assert {(c["path"], c["change"]) for c in status["changes"]} == {
        ("notes.txt", "modified"), ("data/x.csv", "deleted")}

    second = json.loads(cli(root, "snapshot", "-m", "second", "--json").out)
    log = json.loads(cli(root, "log", "--json").out)
    assert [e["id"] for e in log] == [second["id"], snap["id"]]

    diff = json.loads(cli(root, "diff", "latest~1", "latest", "--json").out)
    assert {(c["path"], c["change"]) for c in diff["changes"]} == {
        ("notes.txt", "modified"), ("data/x.csv", "deleted")}
    text = cli(root, "diff", snap["short_id"], "latest", "--", "notes.txt")
    assert "-line 2" in text.out and "+line two" in text.out
    work = cli(root, "diff", "latest~1", "--", "notes.txt")
    assert "+line two" in work.out

    cat = cli(root, "cat", snap["id"][:6], "notes.txt")
    assert cat.out == "line 1\nline 2\n"


def test_tables_restore_fsck_gc(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = _project(tmp_path)
    snap = json.loads(cli(root, "snapshot", "--json").out)
    (root / "notes.txt").write_text("changed\n")
    table = cli(root, "status")
    assert "notes.txt" in table.out and "modified" in table.out
    assert "snapshots" in cli(root, "log").out
    restored = json.loads(cli(root, "restore", snap["id"], "--json").out)
    assert restored["safety_snapshot"] and "notes.txt" in restored["written"]
    assert (root / "notes.txt").read_text() == "line 1\nline 2\n"
    fsck = json.loads(cli(root, "fsck", "--json").out)
    assert fsck["ok"] and fsck["snapshots"] == 2
    gc = json.loads(cli(root, "gc", "--json").out)
    assert gc["deleted"] == 0 and gc["kept"] > 0
    assert "nothing changed" in cli(root, "status").out


def test_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    outside = run_workbench(tmp_path, "status")
    assert outside.returncode == 2 and "not a workbench project" in outside.stderr
    assert len(outside.stderr.strip().splitlines()) == 1
    root = _project(tmp_path)
    for argv in (("cat", "deadbeef", "notes.txt"), ("restore", "latest"), ("diff", "nope"),
                 ("cat", "latest~3", "x")):
        result = run_workbench(root, *argv)
        assert result.returncode == 2, argv
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    run_workbench(root, "snapshot")
    bad = run_workbench(root, "restore", "latest", "../escape")
    assert bad.returncode == 2 and "refused" in bad.stderr
    missing = run_workbench(root, "cat", "latest", "no-such-file")
    assert missing.returncode == 2 and "no file" in missing.stderr


def test_status_as_a_process_on_an_unchanged_tree(tmp_path: Path) -> None:
    root = _project(tmp_path)
    assert run_workbench(root, "snapshot").returncode == 0
    result = run_workbench(root, "status", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["changes"] == []
    sub = run_workbench(root / "data", "-C", str(root / "data"), "status", "--json")
    assert sub.returncode == 0  # found upward, as git does


def test_diff_of_a_csv_or_binary_file_prints_a_summary(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``workbench diff A B -- PATH`` summarises tables (rows, columns) and binary files (size,
    hash) with the same code as the TUI's History screen, and keeps the unified diff for text."""
    root = _project(tmp_path)
    (root / "model.bin").write_bytes(b"\0\1\2" * 100)
    first = json.loads(cli(root, "snapshot", "--json").out)["id"]
    (root / "data" / "x.csv").write_text("a,b,c\n1,2,3\n4,5,6\n7,8,9\n")
    (root / "model.bin").write_bytes(b"\0\1\2" * 150)
    second = json.loads(cli(root, "snapshot", "--json").out)["id"]

    table = cli(root, "diff", first[:8], second[:8], "--", "data/x.csv")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0] == "data/x.csv"
    assert lines[1].split() == ["rows", "1", "->", "3", "(+2)"]
    assert lines[2].split() == ["columns", "2", "->", "3", "(+1)"]
    assert "@@" not in table.out

    binary = cli(root, "diff", first[:8], second[:8], "--", "model.bin")
    assert binary.code == 0
    assert binary.out.splitlines()[1] == "size 300 -> 450 bytes (+150)"
    assert binary.out.splitlines()[2].startswith("hash ") and "Binary files" not in binary.out

    as_json = json.loads(cli(root, "diff", "--json", first[:8], second[:8], "--", "model.bin").out)
    assert as_json["kind"] == "binary" and "size 300 -> 450" in as_json["diff"]
    text = json.loads(cli(root, "diff", "--json", first[:8], "--", "notes.txt").out)
    assert text["kind"] == "text"


def test_ids_and_paths_are_whole_at_80_columns(cli, tmp_path: Path,  # type: ignore[no-untyped-def]
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids are copied from ``log`` into restore and diff: a long message gives way, never an id."""
    monkeypatch.setenv("COLUMNS", "80")
    root = _project(tmp_path)
    snap = json.loads(cli(root, "snapshot", "-m", "retrained on the cleaned March data with the new "
                                "tokenizer and a larger vocabulary", "--json").out)
    first_row = cli(root, "log").out.splitlines()[2]
    assert snap["short_id"] in first_row and "…" not in first_row.split()[:2]
    deep = root / "data" / "very" / "deep" / "folder" / "structure" / "for" / "the" / "dataset"
    deep.mkdir(parents=True)
    (deep / "features_train_2024_v2.parquet").write_bytes(b"x")
    shown = cli(root, "status").out  # a long path is folded onto two lines, never cut
    assert "…" not in shown and "train_2024_v2.parquet" in shown
