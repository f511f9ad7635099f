"""workbench.remote.jobfetch on this host, through a ``file://`` remote, no container: the host pushes
a snapshot (jobinputs.push_snapshot), the job's side fetches it byte for byte (chunked files too), runs
a command and pushes what it wrote, and the host gets the outputs back (jobinputs.fetch_outputs).
A damaged chunk fails the fetch with exit status 97 and one line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import blake3
import pytest

from workbench.core.workspace import Workspace
from workbench.remote import jobfetch
from workbench.remote.jobinputs import LINK_STAND_IN, fetch_outputs, push_snapshot
from workbench.remote.transport import RemoteSpec
from workbench.versioning.chunking import MAX_CHUNK


def _setup(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[RemoteSpec, Path, bytes]:
    share = tmp_path / "share"
    share.mkdir()
    spec = RemoteSpec(f"file://{share}")
    ws.config.store.chunk_threshold = 64 * 1024
    big = os.urandom(2 * MAX_CHUNK + 1024 * 1024)  # over two maximal chunks: never cut as one
    (ws.root / "data" / "deep").mkdir(parents=True)
    (ws.root / "data" / "big.bin").write_bytes(big)
    (ws.root / "data" / "deep" / "small.txt").write_text("hello\n")
    (ws.root / "run.sh").write_text("echo hi\n")
    os.chmod(ws.root / "run.sh", 0o755)
    (ws.root / "data" / "link.txt").symlink_to("deep/small.txt")
    snapshot = ws.versions.snapshot("in").id
    root, report = push_snapshot(ws, spec, snapshot)
    assert report.objects_sent > 3
    assert push_snapshot(ws, spec, snapshot)[1].objects_sent == 0  # known there: nothing sent again
    work = tmp_path / "work"
    plan = {"run_id": "r1", "url": spec.url, "snapshot": snapshot, "root_tree": root, "dest": str(work),
            "chunk_threshold": 64 * 1024, "reason_file": str(tmp_path / "reason"),
            "state_file": str(tmp_path / "state.json")}
    monkeypatch.setenv(jobfetch.PLAN_ENV, json.dumps(plan))
    return spec, work, big


def test_fetch_run_push_round_trip(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, work, big = _setup(ws, tmp_path, monkeypatch)
    assert jobfetch.main(["fetch"]) == 0
    assert (work / "data" / "big.bin").read_bytes() == big
    assert (work / "data" / "deep" / "small.txt").read_text() == "hello\n"
    assert os.readlink(work / "data" / "link.txt") == "deep/small.txt"
    assert os.stat(work / "run.sh").st_mode & 0o100
    script = ("import os; open('data/deep/small.txt', 'a').write('more'); os.makedirs('out');"
              "open('out/rev.bin', 'wb').write(open('data/big.bin', 'rb').read()[::-1]);"
              "os.symlink('/etc/passwd', 'out/l'); raise SystemExit(3)")
    monkeypatch.chdir(work)
    assert jobfetch.main(["run", "--no-fetch", "--", sys.executable, "-c", script]) == 3  # the command's
    back = tmp_path / "back"
    paths = fetch_outputs(ws, spec, "r1", back)
    assert paths == ["data/deep/small.txt", "out/l", "out/rev.bin"]  # changed and created; nothing else
    assert os.readlink(back / "out" / "l") == LINK_STAND_IN  # a link the job made: listed, never sent
    assert (back / "out" / "rev.bin").read_bytes() == big[::-1]
    assert (back / "data" / "deep" / "small.txt").read_text() == "hello\nmore"
    assert fetch_outputs(ws, spec, "other-run", tmp_path / "none") is None


def test_a_damaged_chunk_fails_the_fetch_in_one_line(ws: Workspace, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    spec, work, big = _setup(ws, tmp_path, monkeypatch)
    digest = ws.versions.hash_file(ws.root / "data" / "big.bin")
    chunk = (ws.versions.store.chunks(digest) or [])[1][0]
    obj = Path(spec.url[len("file://"):]) / "objects" / chunk[:2] / chunk[2:]
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0x01
    obj.chmod(0o644)
    obj.write_bytes(bytes(data))
    assert jobfetch.main(["run", "--", sys.executable, "-c", "open('ran', 'w')"]) == jobfetch.EXIT_FETCH
    reason = (tmp_path / "reason").read_text().strip()
    assert len(reason.splitlines()) == 1
    assert reason.startswith("cannot fetch the input snapshot ")
    assert f"object {chunk[:12]} received from the remote does not match its hash" in reason
    assert not (work / "ran").exists() and not (Path.cwd() / "ran").exists()
    assert blake3.blake3(big).hexdigest() == digest
