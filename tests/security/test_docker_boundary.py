"""A hostile container, against a real Docker daemon and the offline image: the host gets none of
what it tries to plant or pull in, and the run shows every refusal."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.executors.conftest import IMAGE
from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest

pytestmark = pytest.mark.docker

HOSTILE = """\
import json, os
import workbench
M = "@@workbench@@ "
os.makedirs(".git/hooks", exist_ok=True)
with open(".git/hooks/x", "w") as f:
    f.write("#!/bin/sh\\ntouch /tmp/pwned\\n")
os.chmod(".git/hooks/x", 0o755)
os.makedirs("sub/.git", exist_ok=True)
with open("sub/.git/config", "w") as f:
    f.write("[core]\\n\\tfsmonitor = evil\\n")
os.makedirs(".workbench", exist_ok=True)
with open(".workbench/anything", "w") as f:
    f.write("planted")
with open("suid.sh", "w") as f:
    f.write("#!/bin/sh\\nid\\n")
os.chmod("suid.sh", 0o6755)
os.symlink("/etc/passwd", "passwd_link")
os.symlink("/etc", "etc_link")
with open("fine.txt", "w") as f:
    f.write("fine")
for event in ({"e": "model", "path": "/etc/passwd", "name": "stolen"},
              {"e": "input", "path": "../../x"},
              {"e": "model", "path": "/workspace/etc_link/passwd", "name": "via-link"},
              {"e": "model", "path": "/workspace/.git/hooks/x", "name": "hook"}):
    print(M + json.dumps(event), flush=True)
workbench.log_model("/etc/shadow", name="api-stolen")  # through the events file
print("uid", os.getuid(), "suid mode", oct(os.stat("suid.sh").st_mode))
"""


def test_a_hostile_container_plants_and_pulls_nothing(ws: Workspace, docker_client: Any) -> None:
    (ws.root / "hostile.py").write_text(HOSTILE)
    lines: list[bytes] = []
    run = ws.runs.execute(RunRequest(["python3", "hostile.py"], executor="docker", image=IMAGE),
                          on_line=lambda channel, line: lines.append(line))
    assert run.status == "succeeded", (run.reason, lines)
    root = ws.root
    # Nothing planted in the VCS folders or the store, no link brought back.
    assert not (root / ".git").exists()
    assert not (root / "sub" / ".git").exists()
    assert not (root / ".workbench" / "anything").exists()
    assert not os.path.lexists(root / "passwd_link") and not os.path.lexists(root / "etc_link")
    # The setuid/setgid file came back as a plain file owned by us.
    mode = (root / "suid.sh").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), oct(mode)
    assert (root / "suid.sh").stat().st_uid == os.getuid()
    assert (root / "fine.txt").read_text() == "fine"
    # No host file was registered or read into the blob cache.
    assert ws.runs.models() == []
    for host in ("/etc/passwd", "/etc/shadow"):
        if os.access(host, os.R_OK):
            assert not ws.versions.store.has(ws.versions.hash_file(Path(host))), host
    # Every refusal is on the run, in show --json.
    shown = subprocess.run([sys.executable, "-m", "workbench", "show", run.id, "--json"], cwd=root,
                           capture_output=True, text=True, timeout=120)
    refused = json.loads(shown.stdout)["refused_events"]
    pairs = {(r["kind"], r["path"]) for r in refused}
    for pair in (("model", "/etc/passwd"), ("input", "../../x"), ("model", "/etc/shadow"),
                 ("model", "/workspace/.git/hooks/x"), ("copy-back", ".git/hooks/x"),
                 ("copy-back", "sub/.git/config"), ("copy-back", ".workbench/anything"),
                 ("copy-back", "passwd_link"), ("copy-back", "etc_link")):
        assert pair in pairs, (pair, sorted(pairs))
    reasons = {r["path"]: r["reason"] for r in refused if r["kind"] == "copy-back"}
    assert reasons[".git/hooks/x"] == "inside .git/"
    # The model named through a link the job made is never registered (the link stayed behind).
    assert all(m.path != "etc_link/passwd" for m in ws.runs.run_models(run.id))
