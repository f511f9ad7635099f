"""Opt-in smoke tests against a real cluster: ``KUBECONFIG=... pytest -m cluster tests/executors``.

They need a namespace you may create PVCs, pods (and pods/exec) and Jobs in (``WORKBENCH_TEST_NAMESPACE``,
default: the context's) and an image with python3, sh, tar and find (``WORKBENCH_TEST_CLUSTER_IMAGE``,
default python:3.11-slim).
"""

from __future__ import annotations

import os

import pytest

from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="set KUBECONFIG to run the cluster suite"),
]
IMAGE = os.environ.get("WORKBENCH_TEST_CLUSTER_IMAGE", "python:3.11-slim")


def test_cluster_answers_discovery() -> None:
    from workbench.executors.cluster import discover

    info = discover()
    assert info.version


def test_a_run_on_the_cluster_comes_back(ws: Workspace) -> None:
    (ws.root / "train.py").write_text(
        "import workbench\nfor i in range(3):\n    workbench.log_metric('loss', 1 / (i + 1), step=i)\n"
        "open('out.txt', 'w').write('hello from the cluster')\nprint('loss: 0.1')\n"
    )
    run = ws.runs.execute(RunRequest(["python3", "train.py"], executor="kubernetes", image=IMAGE,
                                     namespace=os.environ.get("WORKBENCH_TEST_NAMESPACE"), cpu="200m",
                                     memory="256Mi"))
    assert run.status == "succeeded", run.reason
    assert "loss" in ws.runs.metric_keys(run.id)
    assert (ws.root / "out.txt").read_text() == "hello from the cluster"
