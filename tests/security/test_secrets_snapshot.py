"""Secrets stay out of snapshots: credential files by name at any depth, and files whose first KiB
looks like a credential (real snapshots, the incremental path, the watcher and the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import blake3
import pytest

from tests.conftest import run_workbench
from tests.versioning.test_watcher import Events
from workbench.core.workspace import Workspace
from workbench.versioning import chunking
from workbench.versioning.secrets import LooksLikeSecret, sniff
from workbench.versioning.watch.watcher import Watcher

PEM = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
AWS = b"aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
GCP = json.dumps({"type": "service_account", "project_id": "p", "private_key_id": "abc"}).encode()

NAMED = [
    ".aws/credentials", "home/.aws/credentials", ".kube/config", "deep/er/.kube/config",
    ".docker/config.json", "x/.docker/config.json", ".git-credentials", "sub/.git-credentials",
    ".npmrc", "web/.npmrc", ".pypirc", "credentials.json", "gcp/credentials.json",
    "keys/my-service-account.json", "keys/prod-service-account-key.json", "certs/client.p12",
    "certs/a/b.pfx", "java/keystore.jks", ".ssh/id_ed25519", "deep/.ssh/known_hosts", "a/.ssh/config",
    "n/.netrc", ".env.local", "srv/tls.pem", "srv/tls.key", "kubeconfig-prod.yaml",
]
KEPT = [
    "conf/config", "docker/config.json", ".aws/config", "kube/config", "service-account.md",
    "credentials.py", "notes.txt",
]


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _skipped(info: object) -> dict[str, str]:
    return dict(info.skipped)


@pytest.mark.parametrize("user_rules", [False, True], ids=["defaults-only", "with-workbenchignore"])
def test_credential_files_are_left_out_at_any_depth(ws: Workspace, user_rules: bool) -> None:
    for rel in NAMED + KEPT:
        _write(ws.root, rel, b"harmless text\n")
    if user_rules:  # the scanner's slow path (rules checked per path) must agree with the fast one
        (ws.root / ".workbenchignore").write_text("*.log\n")
    info = ws.versions.snapshot("named secrets")
    files = set(ws.versions.files(info.id))
    assert not files & set(NAMED), sorted(files & set(NAMED))
    assert set(KEPT) <= files
    assert {c.path for c in ws.versions.status()} == set()


@pytest.mark.parametrize("data,kind", [
    (PEM, "PEM private key"),
    (b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n", "PEM private key"),
    (b"-----BEGIN EC PRIVATE KEY-----\nMHcC\n", "PEM private key"),
    (b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n", "PEM private key"),
    (b"-----BEGIN PRIVATE KEY-----\nMIIE\n", "PEM private key"),
    (AWS, "AWS access key id"),
    (b"key: ASIAY34FZKBOKMUTVV7A\n", "AWS access key id"),
    (GCP, "GCP service-account key"),
])
def test_sniff_finds_each_kind(data: bytes, kind: str) -> None:
    assert sniff(b"# config\n" + data) == kind


@pytest.mark.parametrize("data", [
    b"-----BEGIN PUBLIC KEY-----\nMFkw\n", b"-----BEGIN CERTIFICATE-----\nMIIB\n",
    b"id = AKIAIOSFODNN7EXAMPL\n", b"XAKIAIOSFODNN7EXAMPLE\n", b"akiaiosfodnn7example\n",
    b'{"type": "authorized_user"}', b"x" * 1024 + PEM, b"\x89PNG\0\0" + PEM,
])
def test_sniff_leaves_ordinary_files_alone(data: bytes) -> None:
    assert sniff(data) is None


def test_sniffed_secrets_are_left_out_reported_and_never_stored(ws: Workspace) -> None:
    _write(ws.root, "notes/deploy.txt", PEM)
    _write(ws.root, "settings.yaml", b"region: eu\n" + AWS)
    _write(ws.root, "gcp/sa.json", GCP)
    _write(ws.root, "train.py", b"print('hi')\n")
    info = ws.versions.snapshot("first")
    skipped = _skipped(info)
    assert skipped["notes/deploy.txt"] == ("looks like a secret (PEM private key); add '!notes/deploy.txt' "
                                           "to .workbenchignore to version it")
    assert "AWS access key id" in skipped["settings.yaml"]
    assert "GCP service-account key" in skipped["gcp/sa.json"]
    assert set(ws.versions.files(info.id)) == {"train.py"}
    for data in (PEM, b"region: eu\n" + AWS, GCP):
        assert not ws.versions.store.has(blake3.blake3(data).hexdigest())
    # never trusted from the stat index: every scan looks again and says so again
    assert ws.versions.status() == []
    report = ws.versions.status_report(use_watcher=False)
    assert set(dict(report.skipped)) == {"notes/deploy.txt", "settings.yaml", "gcp/sa.json"}
    again = ws.versions.snapshot("again")
    assert not again.created and set(_skipped(again)) == set(skipped)


def test_bang_path_in_workbenchignore_versions_it_until_removed(ws: Workspace) -> None:
    _write(ws.root, "notes/deploy.txt", PEM)
    _write(ws.root, "other.txt", AWS)
    _write(ws.root, "keep/server.pem", PEM)
    (ws.root / ".workbenchignore").write_text("!notes/deploy.txt\n!keep/server.pem\n")
    info = ws.versions.snapshot("override")
    assert ws.versions.read_file(info.id, "notes/deploy.txt") == PEM
    assert ws.versions.read_file(info.id, "keep/server.pem") == PEM  # a default name, re-included
    assert set(_skipped(info)) == {"other.txt"}
    # The kept secret is not trusted from the stat index: dropping the rule drops it at once.
    (ws.root / ".workbenchignore").write_text("!keep/server.pem\n")
    info = ws.versions.snapshot("rule dropped")
    assert set(ws.versions.files(info.id)) == {".workbenchignore", "keep/server.pem"}
    assert set(_skipped(info)) == {"other.txt", "notes/deploy.txt"}


def test_an_index_from_before_sniffing_is_not_trusted(ws: Workspace) -> None:
    """A stat index written before this check (version 2) could vouch for a secret: it is dropped."""
    import marshal

    from workbench.versioning.state import PACKED

    _write(ws.root, "old.txt", PEM)
    st = (ws.root / "old.txt").stat()
    digest = blake3.blake3(PEM).digest()
    read_ns = st.st_mtime_ns + 10**10  # read long after its last change: an entry the scan trusts
    entry = PACKED.pack(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, read_ns, digest)
    (ws.paths.store_dir / "index").write_bytes(marshal.dumps((2, {"old.txt": entry})))
    ws.versions.store.ensure_dirs()
    ws.versions.store.put_bytes(PEM)  # versioned before: its blob is in the cache
    info = ws.versions.snapshot("after upgrade")
    assert "old.txt" not in ws.versions.files(info.id) and "old.txt" in _skipped(info)


def test_a_versioned_file_that_becomes_a_secret_is_dropped_on_the_incremental_path(ws: Workspace) -> None:
    _write(ws.root, "a/config.txt", b"harmless\n")
    _write(ws.root, "b.txt", b"b\n")
    first = ws.versions.snapshot("first")
    assert "a/config.txt" in ws.versions.files(first.id)
    _write(ws.root, "a/config.txt", b"harmless\n" + AWS)
    _write(ws.root, "new/dir/key.txt", PEM)
    second = ws.versions.snapshot("incremental", changed_paths=["a/config.txt", "new/dir/key.txt"])
    assert second.created
    assert set(_skipped(second)) == {"a/config.txt", "new/dir/key.txt"}
    assert set(ws.versions.files(second.id)) == {"b.txt"}


def test_large_files_are_sniffed_from_their_first_kib(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(PEM + b"x" * 4096)
    with pytest.raises(LooksLikeSecret):
        chunking.ingest(str(path), None, threshold=1024, sniff="refuse")
    assert chunking.ingest(str(path), None, threshold=1024, sniff="keep").secret == "PEM private key"
    assert chunking.ingest(str(path), None, threshold=1024).size == len(PEM) + 4096


def test_cli_snapshot_and_status_warn_by_name(ws: Workspace) -> None:
    _write(ws.root, "deploy/id.txt", PEM)
    _write(ws.root, "ok.txt", b"ok\n")
    done = run_workbench(ws.root, "snapshot", "-m", "cli")
    assert done.returncode == 0, done.stderr
    assert "skipped deploy/id.txt: looks like a secret (PEM private key)" in done.stderr
    status = run_workbench(ws.root, "status", "--no-watcher")
    assert status.returncode == 0, status.stderr
    assert "skipped deploy/id.txt: looks like a secret" in status.stderr
    as_json = json.loads(run_workbench(ws.root, "status", "--no-watcher", "--json").stdout)
    assert [s["path"] for s in as_json["skipped"]] == ["deploy/id.txt"]


def test_the_watcher_log_names_the_secret(ws: Workspace) -> None:
    events = Events()
    watcher = Watcher(ws.versions, on_event=events, quiet=0.2, max_interval=5.0, retention="")
    watcher.start()
    try:
        events.next("started", timeout=60)
        _write(ws.root, "leaked.txt", AWS)
        _write(ws.root, "ok.txt", b"ok\n")
        found = events.next("secret", timeout=60)
        assert found.paths == ("leaked.txt",)
        assert "leaked.txt (looks like a secret (AWS access key id)" in found.message
        snap = events.next("snapshot", timeout=60,
                           where=lambda e: "ok.txt" in ws.versions.files(e.snapshot_id or ""))
        assert "leaked.txt" not in ws.versions.files(snap.snapshot_id or "")
    finally:
        watcher.stop(flush=False)
