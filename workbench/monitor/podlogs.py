"""Collect predictions from cluster pods: marked lines in each pod's log, read from a line offset.

A pod serving with capture prints ``@@workbench-prediction@@ {json}`` per answered row
(:mod:`workbench.deploy.capture`). Each pod is a source ``pod:<namespace>/<pod>`` whose offset is
the number of log lines already consumed; the lines after it are read through the pod log API (the
channel the Kubernetes executor uses), their marked lines stored, and the offset moved in the same
transaction, as for spool files. A pod's log outlives Workbench (not the pod): lines printed while
Workbench was not running are collected on the next ingest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.deploy.capture import MARKER
from workbench.errors import WorkbenchError
from workbench.monitor.ingest import IngestReport, set_offset, source_offset, store_lines

if TYPE_CHECKING:
    from workbench.monitor.host import MonitorHost

_MARK = MARKER.encode()


def ingest_pod_log(ws: MonitorHost, deployment: str, namespace: str, pod: str, text: bytes,
                   report: IngestReport, *, now: float) -> None:
    """Store the marked lines of ``text`` (the pod's whole log) past the pod's line offset."""
    source = f"pod:{namespace}/{pod}"
    lines = text.split(b"\n")
    complete = lines[:-1]  # the part after the last newline is still being written
    offset = source_offset(ws.db, source)
    if len(complete) <= offset:
        return
    fresh = [ln[len(_MARK):] for ln in complete[offset:] if ln.startswith(_MARK)]
    with ws.atomic() as conn:
        store_lines(conn, deployment, fresh, now, report)
        set_offset(conn, source, deployment, len(complete), now)


def ingest_cluster(ws: MonitorHost, deployment: str | None, report: IngestReport, *, now: float) -> set[str]:
    """Read the pods of every cluster deployment (or of ``deployment``); returns those that got rows."""
    rows = ws.db.execute(
        "SELECT name, target FROM deployments WHERE target != 'local' AND state != 'undeployed'"
        + (" AND name = ?" if deployment else ""),
        (deployment,) if deployment else (),
    ).fetchall()
    touched: set[str] = set()
    for name, target in rows:
        before = report.added
        try:
            row = {"name": name, "target": target, "revision": _revision(ws, name)}
            cluster = ws.deployments._cluster(row)
            for pod, text in pod_logs(cluster, name):
                ingest_pod_log(ws, name, cluster.namespace, pod, text, report, now=now)
        except WorkbenchError as exc:
            report.errors.append(f"{name}: {exc.one_line()}")
        except Exception as exc:  # a cluster client error of any kind: keep the rest of the ingest
            report.errors.append(f"{name}: {exc}")
        if report.added > before:
            touched.add(name)
    return touched


def _revision(ws: MonitorHost, name: str) -> int:
    row = ws.db.execute("SELECT revision FROM deployments WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def pod_logs(cluster: Any, name: str) -> list[tuple[str, bytes]]:
    """``(pod, log)`` of each pod of the deployment's Deployment (or KServe predictor)."""
    from workbench.deploy.kubeapi import _path

    dep = cluster.get("apps/v1", "Deployment", name)
    if dep is None:
        dep = cluster.get("apps/v1", "Deployment", f"{name}-predictor")
    if dep is None:
        return []
    labels = dep["spec"]["selector"]["matchLabels"]
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods = cluster.request("get", _path("v1", "Pod", cluster.namespace), label_selector=selector)
    found: list[tuple[str, bytes]] = []
    for pod in pods.get("items", []):
        pod_name = pod["metadata"]["name"]
        path = f"/api/v1/namespaces/{cluster.namespace}/pods/{pod_name}/log"
        found.append((pod_name, cluster.raw("get", path)))
    return found
