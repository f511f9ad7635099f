"""The Kubernetes executor on the cluster double with a Docker-backed kubelet: a real Job end to end.

Nothing is scripted: the staging helper pod runs as a container and the executor's own ``tar -x``
staging script runs in it through ``pods/exec``; the Job's pod runs the training script in the offline
test image under OpenShift's arbitrary uid (read-only capabilities, no privilege escalation), its
tracking events come back through the pod log, and the collect helper's ``find -newer | tar -c``
brings the outputs home. The test ends with no container and no object left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_workbench
from tests.executors.conftest import IMAGE
from tests.kube.controllers import ClusterDouble
from tests.kube.docker_kubelet import DockerKubelet, close_cluster
from workbench.core.workspace import Workspace
from workbench.executors.base import LaunchSpec, SideChannel
from workbench.executors.kubernetes import KubernetesExecutor

pytestmark = [pytest.mark.docker, pytest.mark.slow]
NS = "ml"
TRAIN = """\
import os, sys
import workbench
workbench.log_param("lr", sys.argv[2])
for step in range(3):
    workbench.log_metric("loss", 1.0 / (step + 1), step=step)
    print(f"epoch={step} uid={os.getuid()}", flush=True)
os.makedirs("models", exist_ok=True)
with open("models/m.txt", "w") as out:
    out.write(open("data.csv").read().upper())
"""


@pytest.fixture
def cluster(tmp_path: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ClusterDouble]:
    def kubelet(double: ClusterDouble, node: str) -> DockerKubelet:
        return DockerKubelet(double, node, client=docker_client)

    double = ClusterDouble(tmp_path / "cluster", NS, kubelet=kubelet)
    monkeypatch.setenv("KUBECONFIG", str(double.kubeconfig(tmp_path / "kubeconfig", NS)))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    double.add_node("node-a")
    double.add_node("node-b")
    try:
        yield double
    finally:
        close_cluster(double, docker_client)


def test_a_job_runs_for_real_staged_tracked_and_collected(ws: Workspace, cluster: ClusterDouble) -> None:
    (ws.root / "train.py").write_text(TRAIN)
    (ws.root / "data.csv").write_text("a,b\n1,2\n")
    spec = LaunchSpec(
        job_id="run1", command=["python3", "train.py", "--lr", "0.1"], project_root=ws.root,
        input_snapshot=ws.versions.snapshot("input").id, image=IMAGE,
        env={"WORKBENCH_RUN_ID": "run1", "WORKBENCH_PROJECT": str(ws.root)},
        side=SideChannel("WORKBENCH_EVENTS", ws.root / "x.jsonl", "@stdout", b"@@workbench@@ "),
        memory="256m")
    executor = KubernetesExecutor(ws, poll=0.05, ready_timeout=120, pending_timeout=120)
    job = executor.launch(spec)
    out = list(job.lines())
    exit_ = job.wait()
    assert (exit_.status, exit_.exit_code) == ("succeeded", 0), (exit_, out)
    stdout = [text for kind, text in out if kind == "stdout"]
    assert stdout == [f"epoch={i} uid=1000770000".encode() for i in range(3)]  # restricted-v2's uid
    events = [text for kind, text in out if kind == "event"]
    assert b'{"e":"param","k":"lr","v":"0.1"}' in events
    assert any(e.startswith(b'{"e":"series","k":"loss","n":3,') for e in events), events  # one batch of 3
    pod = next(p for p in cluster.pods() if p["metadata"]["labels"].get("job-name") == "wb-run1")
    assert pod["spec"]["nodeName"] in ("node-a", "node-b")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert executor.collect_outputs(spec, job) == ["models/m.txt"]
    assert (ws.root / "models" / "m.txt").read_text() == "A,B\n1,2\n"
    cluster.wait_for("the run's pods, Job and volume to go", lambda: not any(
        cluster.snapshot().get(kind) for kind in ("pods", "jobs", "persistentvolumeclaims")), timeout=60)


def test_workbench_run_on_the_cluster_comes_back(ws: Workspace, cluster: ClusterDouble,
                                                 tmp_path: Path) -> None:
    """What a user types: ``workbench run --executor kubernetes``, recorded like any run."""
    (ws.root / "train.py").write_text(
        "import workbench\nfor i in range(3):\n    workbench.log_metric('loss', 1 / (i + 1), step=i)\n"
        "open('out.txt', 'w').write('hello from the cluster')\nprint('acc: 0.9')\n")
    done = run_workbench(ws.root, "run", "--executor", "kubernetes", "--image", IMAGE, "--namespace", NS,
                         "--memory", "256m", "--", "python3", "train.py", timeout=300,
                         env={"KUBECONFIG": str(tmp_path / "kubeconfig")})
    assert done.returncode == 0, done.stderr
    run = ws.runs.list()[0]
    assert run.status == "succeeded"
    assert {"loss", "acc"} <= set(ws.runs.metric_keys(run.id))
    assert (ws.root / "out.txt").read_text() == "hello from the cluster"
