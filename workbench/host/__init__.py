"""Facts about this machine, on the ground floor of the package: processes (liveness, start times)
and GPUs (NVML, a cluster's GPUs per node).

Nothing here imports a domain package (core, tracking, executors, versioning, workflows, deploy,
monitor, remote): they all may import it, so a fact such as "does this pid still run" has one home.
"""
