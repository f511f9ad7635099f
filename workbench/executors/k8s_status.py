"""Read a Job and its pod as a person would: still pending (and why), running, or ended (and how).

Kubernetes spreads the story over the Job's conditions (``Complete``, ``Failed`` with
``DeadlineExceeded`` or ``BackoffLimitExceeded``), the pod's phase and conditions (``PodScheduled``
false with ``Unschedulable``) and the container's state (``waiting`` with ``ImagePullBackOff``,
``terminated`` with ``OOMKilled`` and an exit code). These functions fold that into a
:class:`~workbench.executors.base.JobExit` whose reason says it in words.
"""

from __future__ import annotations

from typing import Any

from workbench.executors.base import JobExit

FATAL_WAITING = {
    "ErrImagePull": "image pull failed",
    "ImagePullBackOff": "image pull failed",
    "InvalidImageName": "invalid image name",
    "CreateContainerConfigError": "the container could not be configured",
    "CreateContainerError": "the container could not be created",
    "RunContainerError": "the container could not be started",
}


def _container_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def pod_problem(pod: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, words) for a pod that is stuck before running: 'image' or 'unschedulable'."""
    state = (_container_status(pod).get("state") or {}).get("waiting") or {}
    reason = state.get("reason") or ""
    if reason in FATAL_WAITING:
        message = " ".join(str(state.get("message") or "").split())
        words = f"{reason}: {FATAL_WAITING[reason]}"
        if message:
            words += f" ({message[:200]})"
        if reason == "CreateContainerConfigError" and "non-root" in message:
            words += "; the image runs as root: give it a non-root USER"
        return "image" if "Image" in reason or "image" in reason else "config", words
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (condition.get("type") == "PodScheduled" and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"):
            message = " ".join(str(condition.get("message") or "").split())
            if "nvidia.com/gpu" in message:
                return "unschedulable", f"Unschedulable: no node has a free NVIDIA GPU ({message[:200]})"
            return "unschedulable", f"Unschedulable: {message[:200] or 'no node fits the pod'}"
    return None


def pod_phase(pod: dict[str, Any] | None) -> str:
    return str(((pod or {}).get("status") or {}).get("phase") or "Pending")


def pod_started(pod: dict[str, Any] | None) -> bool:
    """Whether the container has started (running or already terminated): its log can be read."""
    if pod is None:
        return False
    if pod_phase(pod) in ("Running", "Succeeded", "Failed"):
        return True
    state = _container_status(pod).get("state") or {}
    return bool(state.get("running") or state.get("terminated"))


def pod_ended(pod: dict[str, Any] | None) -> bool:
    return pod_phase(pod) in ("Succeeded", "Failed")


def terminated_words(pod: dict[str, Any] | None, memory: str = "") -> tuple[int | None, str]:
    """Exit code and words from the pod's terminated container."""
    status = _container_status(pod or {})
    state = (status.get("state") or {}).get("terminated") or (status.get("lastState") or {}).get(
        "terminated") or {}
    if not state:
        return None, ""
    code = state.get("exitCode")
    code = int(code) if code is not None else None
    reason = state.get("reason") or ""
    if reason == "OOMKilled":
        limit = f" (limit {memory})" if memory else ""
        return code, f"OOMKilled: the pod ran out of memory{limit}"
    if code == 0:
        return 0, ""
    if reason == "DeadlineExceeded":
        return code, "DeadlineExceeded: the pod ran past its deadline"
    if code is not None and code > 128:
        import signal

        try:
            return code, f"killed by {signal.Signals(code - 128).name} (exit {code})"
        except ValueError:
            pass
    return code, f"exited with code {code}" + (f" ({reason})" if reason and reason != "Error" else "")


def job_condition(job: dict[str, Any]) -> tuple[str, str, str] | None:
    """(type, reason, message) of the Job's Complete/Failed condition, if it has ended."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return (str(condition["type"]), str(condition.get("reason") or ""),
                    " ".join(str(condition.get("message") or "").split()))
    return None


def job_exit(job: dict[str, Any] | None, pod: dict[str, Any] | None, memory: str = "") -> JobExit | None:
    """How the run ended, or None while it still runs."""
    code, words = terminated_words(pod, memory)
    condition = job_condition(job) if job else None
    if condition is None:
        if pod_ended(pod):
            # The pod has ended; the Job controller has not written its condition yet.
            if pod_phase(pod) == "Succeeded":
                return JobExit(code if code is not None else 0, "succeeded", "")
            return JobExit(code, "failed", words or "the pod failed")
        return None
    kind, reason, message = condition
    if words.startswith("OOMKilled"):  # the root cause leads, whatever the Job's condition says
        return JobExit(code, "failed", f"{words}; the Job failed ({reason or 'Failed'})")
    if kind == "Complete":
        return JobExit(code if code is not None else 0, "succeeded", "")
    if reason == "DeadlineExceeded":
        text = "DeadlineExceeded: the Job ran longer than its activeDeadlineSeconds"
        return JobExit(code, "failed", text + (f"; {words}" if words else ""))
    if reason == "BackoffLimitExceeded":
        text = "BackoffLimitExceeded: the pod failed and the Job allows no more retries"
        return JobExit(code, "failed", text + (f"; {words}" if words else ""))
    if words:
        return JobExit(code, "failed", words)
    return JobExit(code, "failed", f"{reason or 'Failed'}: {message}" if message else (reason or "failed"))
