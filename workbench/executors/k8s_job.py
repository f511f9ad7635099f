"""One run's Kubernetes Job as a :class:`workbench.executors.base.Job`: state, log, exit, cancel.

:class:`KubernetesJob` waits for the run pod to start (giving up with the reason when it cannot:
image pull, bad config, unschedulable past the pending timeout), follows its log with resume
(:mod:`workbench.executors.k8s_logs`), reads the exit from the Job's conditions and the pod's
container state (:mod:`workbench.executors.k8s_status`), and cancels by deleting the Job with
``propagationPolicy=Foreground``. :class:`~workbench.executors.kubernetes.KubernetesExecutor`
creates it; :meth:`workbench.executors.service.ExecutorService.attach` builds one again for a job
still going.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from workbench.executors import k8s_manifests as manifests
from workbench.executors.base import Channel, JobExit
from workbench.executors.k8s_client import KubeApi, KubeApiError
from workbench.executors.k8s_logs import LogFollower
from workbench.executors.k8s_status import job_condition, job_exit, pod_ended, pod_problem, pod_started
from workbench.executors.streams import classify

JOB_REASON_GRACE = 10.0
"""Seconds to wait, once the pod has failed, for the Job controller to write the Job's Failed
condition (its reason leads the run's reason); past that the pod's own words are used."""


def api_paths(namespace: str) -> dict[str, str]:
    """The collection paths a run uses in its namespace (pods, volume claims, Jobs, its Secret)."""
    return {
        "pods": f"/api/v1/namespaces/{namespace}/pods",
        "pvcs": f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
        "jobs": f"/apis/batch/v1/namespaces/{namespace}/jobs",
        "secrets": f"/api/v1/namespaces/{namespace}/secrets",
    }


class KubernetesJob:
    """One job's Kubernetes Job; see :class:`workbench.executors.base.Job`."""

    def __init__(self, api: KubeApi, namespace: str, job_id: str, facts: dict[str, str], *,
                 memory: str = "", poll: float = 1.0, pending_timeout: float = 300.0,
                 on_end: Callable[[JobExit], None] | None = None,
                 cleanup: Callable[[], None] | None = None, marker: bytes = b"") -> None:
        """``marker``: the prefix of the side channel's lines in the pod's log (empty: none)."""
        self.api = api
        self.namespace = namespace
        self.job_id = job_id
        self.job_name = manifests.dns_name(job_id)
        self._facts = facts
        self._marker = marker
        self._memory = memory
        self._poll = poll
        self._pending_timeout = pending_timeout
        self._on_end = on_end
        self._cleanup = cleanup
        self._paths = api_paths(namespace)
        self._lock = threading.Lock()
        self._cancelled = False
        self._exit: JobExit | None = None
        self._started = time.monotonic()
        self.follower: LogFollower | None = None
        self.resume_from: tuple[int, int] | None = None
        """Re-attaching: skip log lines older than this (unix seconds, nanoseconds)."""

    # -- reading state -------------------------------------------------------------------------
    def _job(self) -> dict[str, Any] | None:
        try:
            return self.api.get(f"{self._paths['jobs']}/{self.job_name}")
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _pod(self) -> dict[str, Any] | None:
        selector = f"{manifests.LABEL_RUN}={manifests.label_value(self.job_id)},{manifests.LABEL_ROLE}=run"
        items = self.api.get(self._paths["pods"], labelSelector=selector).get("items") or []
        wanted = manifests.labels(self.job_id, "run")
        mine = [p for p in items
                if all((p.get("metadata") or {}).get("labels", {}).get(k) == v for k, v in wanted.items())]
        if not mine:
            return None
        mine.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
        pod: dict[str, Any] = mine[-1]
        self._facts["pod"] = str(pod.get("metadata", {}).get("name", ""))
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self._facts["node"] = str(node)
        return pod

    def _stuck(self, pod: dict[str, Any] | None) -> str:
        """Words for a pod that will not start (image, config, or unschedulable for too long)."""
        if pod is None:
            return ""
        problem = pod_problem(pod)
        if problem is None:
            return ""
        kind, words = problem
        if kind != "unschedulable" or time.monotonic() - self._started > self._pending_timeout:
            return words
        return ""

    # -- streaming -----------------------------------------------------------------------------
    def lines(self) -> Iterator[tuple[Channel, bytes]]:
        while True:
            if self._cancelled or self._exit is not None:
                return
            pod = self._pod()
            if pod_started(pod):
                break
            stuck = self._stuck(pod)
            if stuck:
                self._give_up(stuck)
                return
            job = self._job()
            if job is None or job_condition(job) is not None:
                return
            time.sleep(self._poll)
        assert pod is not None
        pod_name = pod["metadata"]["name"]

        def fetch(since: str | None, follow: bool) -> Iterator[bytes]:
            query: dict[str, Any] = {"timestamps": True, "follow": follow, "container": "run"}
            if since:
                query["sinceTime"] = since
            return self.api.stream(f"{self._paths['pods']}/{pod_name}/log", query=query,
                                   read_timeout=300 if follow else 60)

        def ended() -> bool:
            if self._cancelled:
                return True
            current = self._pod()
            return current is None or pod_ended(current)

        self.follower = LogFollower(fetch, ended, retry_delay=min(self._poll, 0.5),
                                    stop=lambda: self._cancelled, marker=self._marker)
        if self.resume_from is not None:
            self.follower.last = self.resume_from
        try:
            for line in self.follower.lines():
                yield classify("stdout", line, self._marker)
        except KubeApiError:
            return

    # -- ending --------------------------------------------------------------------------------
    def _give_up(self, words: str) -> None:
        """The pod cannot start: delete the Job and remember why."""
        self.api.delete_quietly(f"{self._paths['jobs']}/{self.job_name}", "Foreground")
        self._finish(JobExit(None, "failed", words))

    def _finish(self, exit_: JobExit) -> None:
        with self._lock:
            if self._exit is not None:
                return
            self._exit = exit_
        if self._on_end is not None:
            self._on_end(exit_)

    def wait(self) -> JobExit:
        failed_at: float | None = None  # when the pod was first seen failed with the Job's reason unwritten
        while self._exit is None:
            if self._cancelled:
                self._finish(JobExit(None, "cancelled", "cancelled: Job deleted with its pods"))
                break
            try:
                job = self._job()
                pod = self._pod()
            except KubeApiError as exc:
                if exc.status in (0, 500, 502, 503, 504):
                    time.sleep(self._poll)
                    continue
                self._finish(JobExit(None, "lost", f"lost the Job: {exc}"))
                break
            if job is None and not self._cancelled:
                self._finish(JobExit(None, "lost", f"the Job {self.job_name} was deleted outside workbench"))
                break
            ended = job_exit(job, pod, self._memory)
            if ended is not None and ended.status == "failed" and job_condition(job or {}) is None:
                # The pod fails first, then the Job controller writes why the Job failed: wait a
                # little for that reason (the words a user knows from kubectl), not for ever.
                if failed_at is None:
                    failed_at = time.monotonic()
                if time.monotonic() - failed_at < JOB_REASON_GRACE:
                    time.sleep(min(self._poll, 0.2))
                    continue
            if ended is not None:
                self._finish(ended)
                break
            stuck = self._stuck(pod)
            if stuck:
                self._give_up(stuck)
                break
            time.sleep(self._poll)
        assert self._exit is not None
        return self._exit

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled or self._exit is not None:
                already = True
            else:
                self._cancelled = True
                already = False
        if already and self._exit is not None and self._exit.status != "cancelled":
            return
        self.api.delete_quietly(f"{self._paths['jobs']}/{self.job_name}", "Foreground")
        if self._cleanup is not None:
            self._cleanup()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def describe(self) -> dict[str, str]:
        return dict(self._facts)
