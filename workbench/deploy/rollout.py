"""Rollout status computed the way ``kubectl rollout status`` computes it, plus pod problems in words.

:func:`deployment_status` follows kubectl's DeploymentStatusViewer: the spec change must be
observed (``observedGeneration >= generation``), the Progressing condition must not say
``ProgressDeadlineExceeded``, every replica must be updated, old replicas terminated, and every
updated replica available. :func:`pod_reasons` reads why pods are not ready (image pull, crash
loop, unschedulable) and :func:`deployment_reasons` why they were not even created (a security
constraint refusal shows up as the ReplicaFailure condition).
"""

from __future__ import annotations

from typing import Any

from workbench.deploy.types import RolloutStatus

Obj = dict[str, Any]


def _condition(obj: Obj, kind: str) -> Obj | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def deployment_status(dep: Obj, reasons: list[str] | None = None) -> RolloutStatus:
    spec, status = dep.get("spec", {}), dep.get("status", {}) or {}
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    current = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    reasons = list(reasons or [])
    name = dep.get("metadata", {}).get("name", "?")

    def result(state: str, message: str) -> RolloutStatus:
        return RolloutStatus(
            state=state,
            message=message,
            desired=desired,
            updated=updated,
            ready=ready,
            available=available,
            reasons=reasons,
        )

    if int(dep.get("metadata", {}).get("generation", 0)) > int(status.get("observedGeneration") or 0):
        return result("progressing", "waiting for the deployment spec update to be observed")
    progressing = _condition(dep, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return result("failed", f'deployment "{name}" exceeded its progress deadline')
    if updated < desired:
        return result("progressing", f"{updated} out of {desired} new replicas have been updated")
    if current > updated:
        return result("progressing", f"{current - updated} old replicas are pending termination")
    if available < updated:
        return result("progressing", f"{available} of {updated} updated replicas are available")
    return result("complete", f'deployment "{name}" successfully rolled out')


def deployment_reasons(dep: Obj) -> list[str]:
    """Why pods could not be created at all (quota, security context constraints ...)."""
    failure = _condition(dep, "ReplicaFailure")
    if not failure or failure.get("status") != "True":
        return []
    message = str(failure.get("message", ""))
    if "security context constraint" in message or "PodSecurity" in message or "violates" in message:
        return [f"the cluster's security rules refused the pods: {message}"]
    return [f"pods could not be created ({failure.get('reason', 'FailedCreate')}): {message}"]


def pod_reasons(pods: list[Obj]) -> list[str]:
    """One line per distinct problem among the pods, in words."""
    out: list[str] = []
    for pod in pods:
        name = pod.get("metadata", {}).get("name", "?")
        status = pod.get("status", {}) or {}
        scheduled = _condition(pod, "PodScheduled")
        if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            out.append(f"pod {name} cannot be scheduled: {scheduled.get('message', 'no node fits it')}")
            continue
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason", "")
            message = waiting.get("message", "")
            if reason in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName"):
                out.append(f"pod {name} cannot pull image {cs.get('image', '?')}: {message or reason}")
            elif reason == "CrashLoopBackOff":
                last = (cs.get("lastState") or {}).get("terminated") or {}
                out.append(
                    f"container {cs.get('name')} in pod {name} keeps crashing "
                    f"(restarted {cs.get('restartCount', 0)} times, last exit code "
                    f"{last.get('exitCode', '?')}{', ' + last['reason'] if last.get('reason') else ''})"
                )
            elif reason == "CreateContainerConfigError":
                out.append(f"pod {name} cannot start its container: {message or reason}")
            elif cs.get("ready") is False and (cs.get("state") or {}).get("running"):
                out.append(f"pod {name} is running but its model is not ready yet (readiness check failing)")
    return list(dict.fromkeys(out))


def job_state(job: Obj) -> str:
    """``succeeded`` | ``failed`` | ``running`` for a batch/v1 Job."""
    status = job.get("status", {}) or {}
    if int(status.get("succeeded") or 0) >= 1:
        return "succeeded"
    failed = _condition(job, "Failed")
    if (failed and failed.get("status") == "True") or int(status.get("failed") or 0) > int(
        job.get("spec", {}).get("backoffLimit", 6)
    ):
        return "failed"
    return "running"
