"""Events may not make the host read its own files into the store.

A remote job's events (Docker, Kubernetes) may name only paths inside its workspace; a local job's
event naming a file outside the project is an external reference, never read or registered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.core.workspace import Workspace
from workbench.executors.streams import classify
from workbench.tracking.confine import relativise
from workbench.tracking.events import MARKER_BYTES
from workbench.tracking.ingest import Ingester
from workbench.tracking.records import create_run

WS = "/workspace"


def _event(line: bytes) -> dict[str, object]:
    result = json.loads(line)
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize("payload, reason", [
    (b'{"e":"model","path":"/etc/passwd"}', "outside the job's workspace"),
    (b'{"e":"model","path":"/home/user/.ssh/id_rsa","name":"m"}', "outside the job's workspace"),
    (b'{"e":"input","path":"../../x"}', "'..'"),
    (b'{"e":"output","path":"/workspace/../etc/shadow"}', "'..'"),
    (b'{"e":"model","path":"/workspacefoo/secret"}', "outside the job's workspace"),
    (b'{"e":"model","path":"/workspace"}', "the workspace itself"),
    (b'{"e":"model","path":"/workspace/.git/config"}', "inside .git/"),
    (b'{"e":"output","path":"sub/.Git/hooks/x"}', "inside .Git/"),
    (b'{"e":"model","path":"/workspace/.workbench/workbench.db"}', "inside .workbench/"),
    (b'{"e":"model","path":"a\\u0000b"}', "NUL"),
    # Spellings that slipped past a byte-level check: escaped key, duplicate keys, a second marker.
    (b'{"e":"model","pa\\u0074h":"/etc/passwd"}', "outside the job's workspace"),
    (b'{"e":"model","path":"/workspace/ok.pkl","path":"/etc/passwd"}', "outside the job's workspace"),
    (b'@@workbench@@ {"e":"model","path":"/etc/passwd"}', "outside the job's workspace"),
    (b'  {"e":"model","path":"/etc/passwd"}', "outside the job's workspace"),
])
def test_remote_events_outside_the_workspace_are_refused(payload: bytes, reason: str) -> None:
    channel, line = classify("stdout", b"@@workbench@@ " + payload, MARKER_BYTES)
    assert channel == "event"
    event = _event(relativise(line, WS))
    assert event["e"] == "refused", event
    assert reason in str(event["reason"])
    assert event["kind"] in ("model", "input", "output")


def test_remote_paths_inside_the_workspace_are_made_relative() -> None:
    assert _event(relativise(b'{"e":"model","path":"/workspace/models/m.pkl"}', WS))["path"] == "models/m.pkl"
    assert _event(relativise(b'{"e":"output","path":"./out//a.csv"}', WS))["path"] == "out/a.csv"
    plain = b'{"e":"metric","k":"acc","v":0.9}'
    assert relativise(plain, WS) is plain  # no path: untouched, not even parsed


def test_the_ingester_records_refusals_on_the_run(ws: Workspace) -> None:
    create_run(ws.db, "r1", name="t", command=["x"], executor="docker")
    ingester = Ingester(ws.db, "r1", ws.root)
    for payload in (b'{"e":"model","path":"/etc/passwd"}', b'{"e":"input","path":"../../x"}',
                    b'{"e":"output","path":"/workspace/ok.txt"}'):
        ingester.feed_line(relativise(payload, WS))
    ingester.flush()
    assert ingester.models == []
    refused = ws.runs.refused_events("r1")
    assert [(r["kind"], r["path"]) for r in refused] == [("model", "/etc/passwd"), ("input", "../../x")]
    files = ws.db.execute("SELECT direction, path FROM run_files WHERE run_id = 'r1'").fetchall()
    assert [tuple(row) for row in files] == [("output", "ok.txt")]
    logs = [r[0] for r in ws.db.execute("SELECT line FROM run_logs WHERE run_id = 'r1'")]
    assert any("refused model path '/etc/passwd'" in line for line in logs)


SCRIPT = """\
import os, workbench
secret = os.environ["SECRET"]
workbench.log_model(secret, name="stolen")
workbench.log_model("escape/id_rsa", name="via-link")
workbench.log_model(".git/config", name="gitconfig")
os.makedirs("models", exist_ok=True)
with open("models/ok.pkl", "wb") as handle:
    handle.write(b"fine weights")
workbench.log_model("models/ok.pkl", name="ok")
print(len(open(secret).read()))
"""


def test_a_local_run_never_ingests_a_host_file(ws: Workspace, tmp_path: Path) -> None:
    host = tmp_path / "home" / ".ssh"
    host.mkdir(parents=True)
    secret = host / "id_rsa"
    secret.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY----- very secret\n")
    os.symlink(host, ws.root / "escape")
    (ws.root / ".git").mkdir()
    (ws.root / ".git" / "config").write_text("[remote]\n\turl = https://token@example.com\n")
    (ws.root / "train.py").write_text(SCRIPT)
    env = {**os.environ, "SECRET": str(secret), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "workbench", "run", "--", sys.executable, "train.py"],
                          cwd=ws.root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = ws.runs.get("latest")
    assert run.status == "succeeded", run.reason
    # Only the model inside the project was registered.
    assert [m.name for m in ws.runs.models()] == ["ok"]
    # The host files were never read into the blob cache.
    store = ws.versions.store
    for path in (secret, ws.root / ".git" / "config"):
        assert not store.has(ws.versions.hash_file(path)), path
    # The refusals are on the run, in show and show --json.
    shown = subprocess.run([sys.executable, "-m", "workbench", "show", run.id, "--json"], cwd=ws.root,
                           env=env, capture_output=True, text=True, timeout=120)
    data = json.loads(shown.stdout)
    refused = {(r["kind"], r["path"]) for r in data["refused_events"]}
    assert ("model", str(secret)) in refused
    assert ("model", "escape/id_rsa") in refused
    assert ("model", str(ws.root / ".git" / "config")) in refused  # as the API named it: absolute
    text = subprocess.run([sys.executable, "-m", "workbench", "show", run.id], cwd=ws.root, env=env,
                          capture_output=True, text=True, timeout=120).stdout
    assert "refused" in text and str(secret) in text
    # The secret the script read is at most an external reference: recorded, never hashed.
    for item in data["inputs"]:
        if item["path"] in (str(secret), "escape/id_rsa"):
            assert item["hash"] is None, item
