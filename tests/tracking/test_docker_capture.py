"""Zero-code capture inside a container: the sitecustomize's audit hook and environment report
through the Docker executor's path mapping (/workspace in the container, project paths on the host).

Needs the Docker daemon and the offline image of tests/executors (skipped with the reason if not).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.executors.conftest import IMAGE, docker_client  # noqa: F401 - the fixture
from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest

pytestmark = pytest.mark.docker

SCRIPT = """\
import os
rows = open("data/in.csv").read().split()
os.makedirs("out", exist_ok=True)
with open("out/result.txt", "w") as handle:
    handle.write(str(len(rows)))
fd = os.open("out/raw.bin", os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"x")
os.close(fd)
print(f"rows: {len(rows)}")
"""


def test_audit_hook_files_and_environment_arrive_from_a_container(
    ws: Workspace, docker_client: Any  # noqa: F811 - the fixture
) -> None:
    (ws.root / "data").mkdir()
    (ws.root / "data" / "in.csv").write_text("1\n2\n3\n", encoding="utf-8")
    (ws.root / "unread.txt").write_text("never opened", encoding="utf-8")
    (ws.root / "count.py").write_text(SCRIPT, encoding="utf-8")

    run = ws.runs.execute(RunRequest(["python3", "count.py"], executor="docker", image=IMAGE))
    assert run.status == "succeeded", run.reason
    assert run.metrics["rows"].last == 3.0

    inputs = {f.path: f for f in ws.runs.inputs(run.id)}
    assert set(inputs) == {"count.py", "data/in.csv"}  # project-relative, not /workspace/...
    assert inputs["data/in.csv"].source == "audit"
    assert inputs["data/in.csv"].hash == ws.versions.hash_file(ws.root / "data" / "in.csv")
    outputs = {f.path: f for f in ws.runs.outputs(run.id)}
    # Reported by the hook while the job ran (the copy-back afterwards finds them again).
    assert outputs["out/result.txt"].source == "audit" and outputs["out/raw.bin"].source == "audit"
    assert outputs["out/result.txt"].hash == ws.versions.hash_file(ws.root / "out" / "result.txt")

    # The container's own interpreter reported itself (not the host's), once.
    environment = ws.runs.get(run.id).environment
    assert environment["executable"].startswith("/usr/bin/python3")
    assert environment["python"].startswith("3.") and isinstance(environment["packages"], dict)
    # No environment cache was written into the container's workspace and copied back.
    assert not (ws.root / ".workbench" / "pyenv").exists()
