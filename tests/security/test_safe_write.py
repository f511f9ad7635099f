"""The shared boundary writer on its own: one rule set, one wording, for every writer of foreign bytes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from workbench.executors.staging import copy_back
from workbench.versioning.safe_write import ProjectWriter, RefusedPath, write_into_project


@pytest.mark.parametrize("rel, reason", [
    (".git/hooks/pre-commit", "inside .git/"),
    ("a/b/.git/config", "inside .git/"),
    (".Git/config", "inside .Git/"),
    (".workbench/config.toml", "inside .workbench/"),
    ("deep/.workbench/workbench.db", "inside .workbench/"),
    (".hg/hgrc", "inside .hg/"),
    ("../x", "'..' leads outside the project"),
    ("a/../../x", "'..' leads outside the project"),
    ("/etc/passwd", "an absolute path is outside the project"),
    ("a//b", "empty or '.' components"),
    ("a/./b", "empty or '.' components"),
    ("", "empty or '.' components"),
    ("a\0b", "NUL"),
])
def test_refused_paths_have_one_wording(tmp_path: Path, rel: str, reason: str) -> None:
    with pytest.raises(RefusedPath) as caught:
        write_into_project(tmp_path, rel, b"x")
    assert reason in caught.value.refusal.reason
    assert caught.value.message.startswith("refused to write '")
    assert caught.value.message.endswith("(a job or snapshot may not write there)")
    assert [p.name for p in tmp_path.iterdir()] == []


def test_the_same_message_from_restore_copy_back_and_the_api(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / ".git" / "hooks").mkdir(parents=True)
    (job / ".git" / "hooks" / "pre-commit").write_text("evil")
    project = tmp_path / "project"
    project.mkdir()
    report = copy_back(job, project, [".git/hooks/pre-commit"])
    assert list(report) == []
    with pytest.raises(RefusedPath) as caught:
        write_into_project(project, ".git/hooks/pre-commit", b"evil")
    expected = ("refused to write '.git/hooks/pre-commit': inside .git/ "
                "(a job or snapshot may not write there)")
    assert report.refused[0].message == expected == caught.value.message


def test_never_through_a_symlinked_folder_nor_over_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    project = tmp_path / "project"
    (project / "a").mkdir(parents=True)
    os.symlink(outside, project / "a" / "b")
    os.symlink(outside / "target.txt", project / "file.txt")
    with pytest.raises(RefusedPath, match="'a/b' is a symlink"):
        write_into_project(project, "a/b/c/x.txt", b"x")
    with pytest.raises(RefusedPath, match="a symlink stands there"):
        write_into_project(project, "file.txt", b"x")
    assert list(outside.iterdir()) == []
    assert os.readlink(project / "file.txt") == str(outside / "target.txt")


def test_modes_lose_special_bits_and_never_gain(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.write_bytes(b"#!/bin/sh\n")
    source.chmod(0o4750)
    project = tmp_path / "project"
    project.mkdir()
    write_into_project(project, "bin/tool", source, os.stat(source).st_mode)
    assert stat.S_IMODE((project / "bin" / "tool").stat().st_mode) == 0o750
    write_into_project(project, "bin/tool", b"again", 0o2644)
    assert stat.S_IMODE((project / "bin" / "tool").stat().st_mode) == 0o644
    assert [p.name for p in (project / "bin").iterdir()] == ["tool"]  # no temporary file left


def test_copy_back_refuses_links_on_the_job_side(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key").write_text("private")
    job = tmp_path / "job"
    job.mkdir()
    os.symlink(outside, job / "dir_link")
    os.symlink(outside / "key", job / "file_link")
    (job / "ok.txt").write_text("ok")
    project = tmp_path / "project"
    project.mkdir()
    report = copy_back(job, project, ["dir_link/key", "file_link", "ok.txt"])
    assert list(report) == ["ok.txt"]
    assert {r.path for r in report.refused} == {"dir_link/key", "file_link"}
    assert sorted(p.name for p in project.iterdir()) == ["ok.txt"]


def test_links_are_made_only_when_they_stay_inside(tmp_path: Path) -> None:
    writer = ProjectWriter(tmp_path)
    writer.write_link("a/to_b", "../b.txt")
    for target in ("/etc", "../../x", "../.git/config"):
        with pytest.raises(RefusedPath, match="leads outside the project"):
            writer.write_link("a/bad", target)
    writer.write_link("hop/up", "..")
    writer.write_link("hop/esc", "up/..")  # lexically inside, really the parent of the root
    assert [r.path for r in writer.finish()] == ["hop/esc"]
    assert os.readlink(tmp_path / "a" / "to_b") == "../b.txt"
    assert not os.path.lexists(tmp_path / "hop" / "esc")


def test_a_snapshot_with_a_link_out_cannot_be_staged_for_a_job(tmp_path: Path) -> None:
    from workbench.core.workspace import Workspace
    from workbench.errors import ExecutorError
    from workbench.executors.staging import checkout_snapshot

    project = tmp_path / "project"
    project.mkdir()
    ws, _ = Workspace.init(project)
    try:
        (project / "train.py").write_text("print(1)\n")
        os.symlink("/etc", project / "etc_link")
        snap = ws.versions.snapshot("with a link out").id
        work = tmp_path / "work"
        with pytest.raises(ExecutorError, match="refused to write 'etc_link'") as caught:
            checkout_snapshot(ws, snap, work)
        assert "\n" not in caught.value.one_line()
        assert (work / "train.py").read_text() == "print(1)\n"  # the rest was staged
        assert not os.path.lexists(work / "etc_link")
    finally:
        ws.close()
