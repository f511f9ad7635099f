"""Two people share a project through a real SeaweedFS server on loopback (the real CLI, as users type it).

A trains and pushes; B clones, sees A's runs, metrics, lineage and models, gets A's files byte for
byte, trains and pushes; A pulls and sees both. Also: two pushes at the same moment both land, a
server killed mid-push then restarted lets the push complete, and a damaged object is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_workbench
from tests.remote.conftest import write_tree
from tests.remote.servers import Seaweed, s3_env, s3_store
from workbench.core.workspace import Workspace

pytestmark = pytest.mark.slow

TRAIN = """\
import sys, workbench
lr = float(sys.argv[1])
workbench.log_param("lr", lr)
for step in range(30):
    workbench.log_metric("loss", 1.0 / (step + 1) + lr, step=step)
with open(sys.argv[2], "wb") as out:
    out.write(("weights lr=%s " % lr).encode() * 2000)
workbench.log_model(sys.argv[2], name="clf")
print("accuracy: 0.9")
"""


def _wb(cwd: Path, env: dict[str, str], *argv: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = run_workbench(cwd, *argv, env=env, timeout=300)
    if ok:
        assert result.returncode == 0, (argv, result.stdout, result.stderr)
    return result


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(".workbench"):
            out[rel] = path.read_bytes()
    return out


def test_two_people_share_runs_models_and_files(seaweed: Seaweed, tmp_path: Path) -> None:
    seaweed.make_bucket("team")
    env = s3_env(seaweed.endpoint)
    url = "s3://team/projects/demo"
    a = tmp_path / "A"
    a.mkdir()
    write_tree(a, {
        "train.py": TRAIN.encode(),
        "data/train.csv": b"x,y\n" + b"".join(b"%d,%d\n" % (i, i * 2) for i in range(5000)),
        "data/big.bin": os.urandom(9 * 1024 * 1024),  # above the chunking threshold: sent as chunks
        "notes/empty.txt": b"",
    })
    _wb(a, env, "init")
    _wb(a, env, "run", sys.executable, "train.py", "0.1", "model_a.bin")
    _wb(a, env, "remote", "add", "origin", url)  # endpoint from AWS_ENDPOINT_URL
    first = json.loads(_wb(a, env, "push", "--json").stdout)
    assert first["records"]["run"] == 1 and first["records"]["model_version"] == 1
    assert first["objects_sent"] > 3
    again = json.loads(_wb(a, env, "push", "--json").stdout)
    assert again["bundle"] is None and again["objects_sent"] == 0

    # B clones: A's files byte for byte, A's run with its metric series, lineage and model.
    b = tmp_path / "B"
    cloned = json.loads(_wb(tmp_path, env, "clone", url, str(b), "--json").stdout)
    assert cloned["restored"]
    assert _files(b) == _files(a)
    with Workspace.open(b) as wsb, Workspace.open(a) as wsa:
        run_a = wsa.runs.list()[0]
        run_b = wsb.runs.get(run_a.id)
        assert run_b.status == "succeeded" and run_b.params == {"lr": 0.1}
        series_a = wsa.runs.metric_series(run_a.id, "loss")
        series_b = wsb.runs.metric_series(run_a.id, "loss")
        assert list(series_b.steps) == list(series_a.steps) and list(series_b.values) == list(series_a.values)
        assert [line.text for line in wsb.runs.log_lines(run_a.id)] == \
            [line.text for line in wsa.runs.log_lines(run_a.id)]
        model = wsb.runs.model_version("clf:1")
        assert model.run_id == run_a.id
        assert b"".join(wsb.versions.iter_object(model.hash)) == (a / "model_a.bin").read_bytes()
        lineage = wsb.runs.lineage("clf:1").to_dict()
        assert run_a.id in json.dumps(lineage)
        snap = run_a.snapshot_before
        assert snap is not None
        assert wsb.versions.read_file(snap, "data/big.bin") == (a / "data/big.bin").read_bytes()

    # B trains and pushes; A pulls and sees both runs and both model versions.
    _wb(b, env, "run", sys.executable, "train.py", "0.2", "model_b.bin")
    _wb(b, env, "push")
    pulled = json.loads(_wb(a, env, "pull", "--json").stdout)
    assert pulled["added"]["run"] == 1 and pulled["conflicts"] == []
    with Workspace.open(a) as wsa:
        runs = wsa.runs.list()
        assert len(runs) == 2
        assert sorted(r.params["lr"] for r in runs) == [0.1, 0.2]
        assert [v.version for v in wsa.runs.model_versions("clf")] == [2, 1]
        run_b = next(r for r in runs if r.params["lr"] == 0.2)
        assert wsa.runs.model_version("clf:2").run_id == run_b.id
        assert (a / "model_b.bin").exists() is False  # pull merges history, it does not touch the folder
        restored_b = run_b.snapshot_after
        assert restored_b is not None
        assert wsa.versions.read_file(restored_b, "model_b.bin") == (b / "model_b.bin").read_bytes()
    assert "already up to date" in _wb(a, env, "pull").stdout


def test_concurrent_pushes_both_land(seaweed: Seaweed, tmp_path: Path) -> None:
    seaweed.make_bucket("concurrent")
    env = s3_env(seaweed.endpoint)
    url = "s3://concurrent/p"
    people = []
    for who in ("one", "two"):
        root = tmp_path / who
        root.mkdir()
        write_tree(root, {"train.py": TRAIN.encode(), f"{who}.txt": who.encode() * 1000})
        _wb(root, env, "init")
        _wb(root, env, "run", sys.executable, "train.py", "0.5", f"{who}.bin")
        _wb(root, env, "remote", "add", "origin", url)
        people.append(root)
    procs = [subprocess.Popen([sys.executable, "-m", "workbench", "push"], cwd=root,
                              env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for root in people]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (out, err)
    c = tmp_path / "three"
    _wb(tmp_path, env, "clone", url, str(c), "--no-checkout")
    with Workspace.open(c) as ws:
        assert len(ws.runs.list()) == 2
        assert sorted(v.version for v in ws.runs.model_versions("clf")) == [1, 2]


def _remote_object_count(endpoint: str, bucket: str) -> int:
    import obstore

    try:
        return sum(len(page) for page in obstore.list(s3_store(endpoint, bucket), "p/objects/"))
    except Exception:
        return 0


def test_server_killed_mid_push_then_push_completes(tmp_path: Path) -> None:
    server = Seaweed(tmp_path / "server").start()
    try:
        server.make_bucket("crash")
        env = s3_env(server.endpoint)
        a = tmp_path / "A"
        a.mkdir()
        write_tree(a, {f"data/{i:05d}.txt": b"row %d\n" % i * 50 for i in range(4000)})
        _wb(a, env, "init")
        _wb(a, env, "snapshot", "-m", "many files")
        _wb(a, env, "remote", "add", "origin", "s3://crash/p")
        push = subprocess.Popen([sys.executable, "-m", "workbench", "push"], cwd=a, env={**os.environ, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while _remote_object_count(server.endpoint, "crash") == 0:
            assert push.poll() is None, "the push ended before the server could be killed"
            assert time.monotonic() < deadline, "no object reached the server"
            time.sleep(0.05)
        server.kill()
        out, err = push.communicate(timeout=300)
        assert push.returncode == 2, (out, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        server.start()  # same data folder and ports
        _wb(a, env, "push")
        b = tmp_path / "B"
        _wb(tmp_path, env, "clone", "s3://crash/p", str(b))
        assert _files(b) == _files(a)
    finally:
        server.stop()


def test_flipped_byte_on_the_server_is_refused(seaweed: Seaweed, tmp_path: Path) -> None:
    import obstore

    seaweed.make_bucket("damaged")
    env = s3_env(seaweed.endpoint)
    a = tmp_path / "A"
    a.mkdir()
    payload = b"precious data " * 1000
    write_tree(a, {"data.bin": payload})
    _wb(a, env, "init")
    _wb(a, env, "snapshot")
    _wb(a, env, "remote", "add", "origin", "s3://damaged/p")
    _wb(a, env, "push")
    with Workspace.open(a) as ws:
        digest = ws.versions.hash_file(a / "data.bin")
    store = s3_store(seaweed.endpoint, "damaged")
    key = f"p/objects/{digest[:2]}/{digest[2:]}"
    blob = bytearray(obstore.get(store, key).bytes())
    blob[len(blob) // 2] ^= 0x01
    obstore.put(store, key, bytes(blob))  # overwrite: the server now holds a damaged copy

    b = tmp_path / "B"
    b.mkdir()
    _wb(b, env, "init")
    _wb(b, env, "remote", "add", "origin", "s3://damaged/p")
    result = _wb(b, env, "pull", ok=False)
    assert result.returncode == 2
    assert "does not match its hash" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    with Workspace.open(b) as ws:
        assert ws.versions.latest() is None  # nothing merged
        assert not ws.versions.store.has(digest)
