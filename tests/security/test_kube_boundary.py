"""A hostile pod, through the Kubernetes API-server double: its marked log events may name only
files in its workspace, and copy-back plants nothing in .git/ or .workbench/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from tests.executors.kube_double import Controller, KubeDouble, Story
from tests.executors.test_kubernetes import IMAGE, controller, double
from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest

__all__ = ["controller", "double"]  # fixtures


def test_a_hostile_pod_pulls_in_no_host_file(
    ws: Workspace, double: KubeDouble, controller: Callable[[Story], Controller]
) -> None:
    marked = "@@workbench@@ "
    controller(Story(
        lines=[
            marked + json.dumps({"e": "model", "path": "/etc/passwd", "name": "stolen"}),
            marked + json.dumps({"e": "input", "path": "../../x"}),
            marked + '{"e":"model","pa\\u0074h":"/root/.kube/config"}',
            marked + marked + json.dumps({"e": "model", "path": "/var/run/secrets/token"}),
            marked + json.dumps({"e": "model", "path": "/workspace/.git/config"}),
            marked + json.dumps({"e": "output", "path": "/workspace/ok.txt"}),
            "done",
        ],
        writes={".git/hooks/pre-commit": b"#!/bin/sh\nevil\n", ".workbench/anything": b"planted",
                "sub/.git/config": b"[core]\n", "ok.txt": b"ok"},
    ))
    (ws.root / "train.py").write_text("print('hi')\n")
    run = ws.runs.execute(RunRequest(["python", "train.py"], executor="kubernetes", image=IMAGE))
    assert run.status == "succeeded", run.reason
    root = ws.root
    assert (root / "ok.txt").read_bytes() == b"ok"
    assert not (root / ".git").exists() and not (root / "sub" / ".git").exists()
    assert not (root / ".workbench" / "anything").exists()
    assert ws.runs.models() == []
    assert "ok.txt" in {f.path for f in ws.runs.outputs(run.id)}
    shown = subprocess.run([sys.executable, "-m", "workbench", "show", run.id, "--json"], cwd=root,
                           capture_output=True, text=True, timeout=120, env={**os.environ})
    pairs = {(r["kind"], r["path"]) for r in json.loads(shown.stdout)["refused_events"]}
    for pair in (("model", "/etc/passwd"), ("input", "../../x"), ("model", "/root/.kube/config"),
                 ("model", "/var/run/secrets/token"), ("model", "/workspace/.git/config"),
                 ("copy-back", ".git/hooks/pre-commit"), ("copy-back", ".workbench/anything"),
                 ("copy-back", "sub/.git/config")):
        assert pair in pairs, (pair, sorted(pairs))
