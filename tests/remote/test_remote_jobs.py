"""A Docker run in a project whose default remote is S3 (SeaweedFS on loopback) fetches its inputs from
the bucket inside the container (obstore mounted from the host, credentials passed at launch only),
pushes its outputs there, and the host records them.

Proof that the inputs travel through the remote: the input file's chunks are removed from the host's
blob cache after the push and the host's staging is made to fail, yet the job reads the file whole.
(The host may store the file again afterwards, from its own disk copy, when it records the run's inputs.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import obstore
import pytest

from tests.executors.conftest import IMAGE, docker_client  # noqa: F401  (the fixture)
from tests.remote.servers import SECRET_KEY, Seaweed, s3_env, s3_store
from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest
from workbench.versioning.chunking import MAX_CHUNK

pytestmark = pytest.mark.docker

TRAIN = """\
import os
data = open("data/big.bin", "rb").read()
print("read", len(data), flush=True)
os.makedirs("out", exist_ok=True)
open("out/copy.bin", "wb").write(data[::-1])
print("env has secret:", "AWS_SECRET_ACCESS_KEY" in os.environ, flush=True)
"""


def test_a_docker_run_reads_its_inputs_from_an_s3_remote(seaweed: Seaweed, tmp_path: Path, ws: Workspace,
                                                        docker_client: Any,  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seaweed.make_bucket("jobs")
    for key, value in s3_env(seaweed.endpoint).items():
        monkeypatch.setenv(key, value)
    ws.config.store.chunk_threshold = 64 * 1024  # the input and the output travel as chunks
    big = os.urandom(2 * MAX_CHUNK + 1024 * 1024)  # over two maximal chunks: never cut as one
    (ws.root / "data").mkdir()
    (ws.root / "data" / "big.bin").write_bytes(big)
    old = os.stat(ws.root / "data" / "big.bin").st_mtime - 3600  # not racy: the run trusts the index
    os.utime(ws.root / "data" / "big.bin", (old, old))
    (ws.root / "train.py").write_text(TRAIN)
    ws.remote.add("origin", "s3://jobs/team")
    ws.versions.snapshot("seed")
    ws.remote.push()
    digest = ws.versions.hash_file(ws.root / "data" / "big.bin")
    store = ws.versions.store
    assert len(store.chunks(digest) or []) > 1  # a chunked file
    for chunk, _ in store.chunks(digest) or []:
        store.path_of(chunk).unlink()  # the host can no longer stage the file's content

    def no_staging(*_args: Any) -> None:
        raise AssertionError("the host staged the inputs; the job should have fetched them")

    monkeypatch.setattr("workbench.executors.docker.checkout_snapshot", no_staging)
    lines: list[bytes] = []
    run = ws.runs.execute(RunRequest(("python3", "train.py"), executor="docker", image=IMAGE),
                          on_line=lambda _channel, line: lines.append(line))
    assert run.status == "succeeded", (run.reason, lines)
    assert f"read {len(big)}".encode() in lines
    assert b"env has secret: False" in lines  # the credentials were jobfetch's only
    assert (ws.root / "out" / "copy.bin").read_bytes() == big[::-1]
    assert "out/copy.bin" in {f.path for f in ws.runs.outputs(run.id)}
    bucket = s3_store(seaweed.endpoint, "jobs")
    listing = json.loads(bytes(obstore.get(bucket, f"team/jobs/{run.id}/outputs.json").bytes()))
    assert [row[0] for row in listing["files"]] == ["out/copy.bin"]
    # The credentials were never written into the project or the run's record.
    for path in (ws.root / ".workbench").rglob("*"):
        if path.is_file():
            assert SECRET_KEY.encode() not in path.read_bytes(), path
