"""Remotes from the command line: configuration, file:// remotes, resumable pulls, and one-line errors
for wrong credentials, a missing bucket and an unreachable endpoint (against a real SeaweedFS)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import run_workbench
from tests.remote.conftest import write_tree
from tests.remote.servers import ACCESS_KEY, SECRET_KEY, Seaweed, s3_env
from workbench.core.workspace import Workspace
from workbench.remote.transport import FileTransport, RemoteSpec


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    err = result.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def _init(root: Path, files: dict[str, bytes]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    write_tree(root, files)
    assert run_workbench(root, "init").returncode == 0
    assert run_workbench(root, "snapshot", "-m", "first").returncode == 0


def test_remote_add_list_default_remove(cli, project_dir: Path, ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    assert cli(project_dir, "remote", "add", "origin", "s3://bucket/team/proj/").code == 0
    r = cli(project_dir, "remote", "add", "nfs", "file:///mnt/share/proj", "--json")
    assert json.loads(r.out) == {"name": "nfs", "url": "file:///mnt/share/proj", "endpoint_url": "",
                                 "region": "", "default": False}
    cli(project_dir, "remote", "add", "ceph", "s3://b2", "--endpoint-url", "http://rgw:8080",
        "--region", "eu")
    listed = json.loads(cli(project_dir, "remote", "list", "--json").out)
    assert [(r["name"], r["url"], r["default"]) for r in listed] == [
        ("ceph", "s3://b2", False), ("nfs", "file:///mnt/share/proj", False),
        ("origin", "s3://bucket/team/proj", True)]
    assert cli(project_dir, "remote", "default", "ceph").code == 0
    assert "* ceph" in cli(project_dir, "remote").out
    assert cli(project_dir, "remote", "remove", "ceph").code == 0
    listed = json.loads(cli(project_dir, "remote", "list", "--json").out)
    assert [r["name"] for r in listed] == ["nfs", "origin"]
    # No default any more: push says what to do, in one line.
    r = cli(project_dir, "push")
    assert r.code == 2 and "no default remote" in r.err and len(r.err.strip().splitlines()) == 1


@pytest.mark.parametrize(("argv", "needle"), [
    (("remote", "add", "x", "http://bucket/p"), "unsupported remote URL"),
    (("remote", "add", "x", "s3:///p"), "names no bucket"),
    (("remote", "add", "x", "file://relative/p"), "not an absolute file URL"),
    (("remote", "add", "bad name", "s3://b"), "bad remote name"),
    (("remote", "add", "x", "s3://b", "--endpoint-url", "rgw:80"), "bad endpoint URL"),
    (("remote", "remove", "nope"), "no remote named"),
    (("pull", "nope"), "no remote named"),
    (("push",), "no remote is configured"),
])
def test_bad_remote_input_is_one_line(cli, project_dir: Path, ws: Workspace,  # type: ignore[no-untyped-def]
                                      argv: tuple[str, ...], needle: str) -> None:
    r = cli(project_dir, *argv)
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_file_remote_round_trip_and_nothing_to_push(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    a = tmp_path / "a"
    _init(a, {"src/a.py": b"print(1)\n", "data/x.bin": os.urandom(200_000)})
    added = run_workbench(a, "remote", "add", "nfs", "../share")  # a folder, as DVC takes one
    assert added.returncode == 0 and f"-> {share.as_uri()} (a folder on this machine" in added.stdout
    first = json.loads(run_workbench(a, "push", "--json").stdout)
    assert first["records"] == {"snapshot": 1} and first["objects_sent"] >= 3
    assert "nothing to push" in run_workbench(a, "push").stdout
    (a / "src/a.py").write_bytes(b"print(2)\n")
    assert run_workbench(a, "snapshot").returncode == 0
    second = json.loads(run_workbench(a, "push", "--json").stdout)
    # Only the changed file and the trees above it travel; data/ is unchanged.
    assert second["records"] == {"snapshot": 1} and second["objects_sent"] == 3
    b = tmp_path / "b"
    assert run_workbench(tmp_path, "clone", str(share), str(b)).returncode == 0
    assert (b / "src/a.py").read_bytes() == b"print(2)\n"
    assert (b / "data/x.bin").read_bytes() == (a / "data/x.bin").read_bytes()
    with Workspace.open(b) as ws:
        assert len(ws.versions.log()) == 2


def test_clone_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    _one_line_error(run_workbench(tmp_path, "clone", share.as_uri(), str(busy)), "not an empty folder")
    assert sorted(p.name for p in busy.iterdir()) == ["keep.txt"]


def test_interrupted_pull_resumes_and_shows_nothing_half_done(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    a = tmp_path / "a"
    _init(a, {f"d{i % 20}/{i:05d}.txt": (b"line %d\n" % i) * 40 for i in range(3000)})
    assert run_workbench(a, "remote", "add", "nfs", share.as_uri()).returncode == 0
    assert run_workbench(a, "push").returncode == 0
    # On a starved machine the pull can finish between the check and the kill: such a try must be
    # whole (merged, fsck ok); the test goes on with a try the kill did interrupt.
    for attempt in range(6):
        b = tmp_path / f"b{attempt}"
        b.mkdir()
        assert run_workbench(b, "init").returncode == 0
        assert run_workbench(b, "remote", "add", "nfs", share.as_uri()).returncode == 0
        pull = subprocess.Popen([sys.executable, "-m", "workbench", "pull"], cwd=b,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        objects = b / ".workbench" / "cache" / "objects"
        deadline = time.monotonic() + 120
        while pull.poll() is None and not (objects.is_dir() and sum(1 for _ in objects.rglob("*")) > 100):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        if pull.poll() is None:
            os.killpg(pull.pid, signal.SIGKILL)
        pull.communicate(timeout=60)
        with Workspace.open(b) as ws:
            merged = ws.versions.latest()  # the records are merged only once every object is here
            if merged is None:
                break
            assert ws.versions.fsck().ok  # it ended (or committed) before the kill: all of it
    else:
        pytest.fail("no pull was interrupted in six tries")
    assert run_workbench(b, "pull").returncode == 0
    with Workspace.open(b) as ws:
        latest = ws.versions.latest()
        assert latest is not None
        assert ws.versions.read_file(latest.id, "d7/00007.txt") == (a / "d7/00007.txt").read_bytes()
        assert ws.versions.fsck().ok


def test_file_transport_put_if_absent_has_one_winner(tmp_path: Path) -> None:
    transport = FileTransport(RemoteSpec(tmp_path.as_uri()))
    results: list[bool] = []
    lock = threading.Lock()

    def put(n: int) -> None:
        won = transport.put_if_absent("bundles/x", b"writer %d" % n)
        with lock:
            results.append(won)

    threads = [threading.Thread(target=put, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert transport.get("bundles/x").startswith(b"writer ")
    assert [k for k, _ in transport.list("bundles/")] == ["bundles/x"]


# -- S3 errors: one line each, exit 2, and credentials never stored --------------------------------
@pytest.fixture
def project_on_s3(seaweed: Seaweed, tmp_path: Path) -> Path:
    seaweed.make_bucket("errors")
    root = tmp_path / "p"
    _init(root, {"a.txt": b"a"})
    assert run_workbench(root, "remote", "add", "origin", "s3://errors/p").returncode == 0
    return root


def test_wrong_credentials_are_one_line(seaweed: Seaweed, project_on_s3: Path, tmp_path: Path) -> None:
    env = s3_env(seaweed.endpoint, secret="not-the-secret")
    _one_line_error(run_workbench(project_on_s3, "push", env=env), "access denied", "AWS_ACCESS_KEY_ID")
    _one_line_error(run_workbench(project_on_s3, "pull", env=env), "access denied")
    _one_line_error(run_workbench(tmp_path, "clone", "s3://errors/p", str(tmp_path / "c"), env=env),
                    "access denied")
    assert not (tmp_path / "c").exists()


def test_missing_bucket_is_one_line(seaweed: Seaweed, project_on_s3: Path) -> None:
    env = s3_env(seaweed.endpoint)
    assert run_workbench(project_on_s3, "remote", "add", "gone", "s3://no-such-bucket/p").returncode == 0
    _one_line_error(run_workbench(project_on_s3, "push", "gone", env=env),
                    "bucket 'no-such-bucket' does not exist")
    _one_line_error(run_workbench(project_on_s3, "pull", "gone", env=env), "does not exist")


def test_unreachable_endpoint_is_one_line(project_on_s3: Path) -> None:
    import socket

    # A port held bound but never listening refuses every connection, and no other server (another
    # test's, another session's) can take it meanwhile, as it could a port merely found free.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    try:
        _unreachable(project_on_s3, f"http://127.0.0.1:{holder.getsockname()[1]}")
    finally:
        holder.close()


def _unreachable(project_on_s3: Path, dead: str) -> None:
    env = s3_env(dead)
    _one_line_error(run_workbench(project_on_s3, "push", env=env), "cannot reach", dead)
    assert run_workbench(project_on_s3, "remote", "add", "dead", "s3://errors/p",
                         "--endpoint-url", dead).returncode == 0
    _one_line_error(run_workbench(project_on_s3, "pull", "dead", env=s3_env("http://unused")), "cannot reach")
    no_keys = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    no_keys["AWS_SHARED_CREDENTIALS_FILE"] = no_keys["AWS_CONFIG_FILE"] = os.devnull
    result = subprocess.run([sys.executable, "-m", "workbench", "pull", "dead"], cwd=project_on_s3,
                            capture_output=True, text=True, env=no_keys, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_credentials_from_a_profile_and_never_stored(seaweed: Seaweed, project_on_s3: Path,
                                                     tmp_path: Path) -> None:
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "credentials").write_text(
        f"[team]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    (aws / "config").write_text(f"[profile team]\nregion = us-east-1\nendpoint_url = {seaweed.endpoint}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_PROFILE": "team", "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
                "AWS_CONFIG_FILE": str(aws / "config")})
    result = subprocess.run([sys.executable, "-m", "workbench", "push", "--json"], cwd=project_on_s3,
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["records"] == {"snapshot": 1}
    for path in (project_on_s3 / ".workbench").rglob("*"):
        if path.is_file():
            assert SECRET_KEY.encode() not in path.read_bytes(), path


def test_metadata_only_clone_fetches_contents_when_restored(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    a = tmp_path / "a"
    big = os.urandom(9 * 1024 * 1024)  # chunked: the manifest and its chunks come on demand
    _init(a, {"src/train.py": b"print('hi')\n", "data/big.bin": big, "data/small.csv": b"a,b\n1,2\n"})
    assert run_workbench(a, "remote", "add", "origin", share.as_uri()).returncode == 0
    assert run_workbench(a, "push").returncode == 0
    b = tmp_path / "b"
    result = run_workbench(tmp_path, "clone", share.as_uri(), str(b), "--metadata-only", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["restored"] is None
    assert sorted(p.name for p in b.iterdir()) == [".workbench"]
    with Workspace.open(b) as ws:
        store = ws.versions.store
        snap = ws.versions.latest()
        assert snap is not None
        entries = ws.versions.files(snap.id)  # the listing is here: trees were fetched
        assert sorted(entries) == ["data/big.bin", "data/small.csv", "src/train.py"]
        assert not any(store.has(e.hash) for e in entries.values())
    # A restore of one folder fetches just what it needs, verified, from the default remote.
    assert run_workbench(b, "restore", snap.id, "src").returncode == 0
    assert (b / "src/train.py").read_bytes() == b"print('hi')\n" and not (b / "data").exists()
    with Workspace.open(b) as ws:
        assert not ws.versions.store.has(entries["data/big.bin"].hash)
    assert run_workbench(b, "restore", snap.id).returncode == 0
    assert (b / "data/big.bin").read_bytes() == big
    # A push from the clone needs no object it never fetched: only the safety snapshots the
    # restores took are new, and their content is on the remote already.
    pushed = run_workbench(b, "push", "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert set(json.loads(pushed.stdout)["records"]) == {"snapshot"}
    assert "nothing to push" in run_workbench(b, "push").stdout


def test_an_unanswered_request_is_never_read_as_access_denied() -> None:
    """A stress run once saw "access denied" for a port nothing listens on: the client's text held an
    elapsed time with "403" in it. Only a 403 answer means access denied."""
    from workbench.remote.transport import classify_s3_error

    where = "s3://b/p at http://127.0.0.1:9"
    unanswered = Exception("Generic S3 error: Error after 10 retries in 4.0403s, max_retries:10, "
                           "retry_timeout:180s, source:error sending request for url (http://127.0.0.1:9/b)")
    assert classify_s3_error(unanswered, "listing", where, "b").one_line().startswith(f"cannot reach {where}")
    forbidden = Exception("Generic S3 error: Client error with status 403 Forbidden: <Error/>")
    denied = classify_s3_error(forbidden, "listing", where, "b").one_line()
    assert denied.startswith(f"access denied by {where}")
