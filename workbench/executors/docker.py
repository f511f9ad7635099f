"""The Docker executor: run a command in a container through the docker SDK.

The input snapshot is checked out into a per-job folder that the container mounts read-write at
``/workspace`` (edits made to the project meanwhile cannot leak in, and the job's writes cannot
touch the project: :meth:`DockerExecutor.output_folder` hands the folder and the files the job
created or changed to the caller, which decides what to bring back). The installed ``workbench``
package is mounted read-only and put on ``PYTHONPATH`` so the tracking API and the capture
sitecustomize work inside the container; the job writes its side-channel lines to a file in
``/workbench/run``, tailed from the host. Those three are the only mounts: host paths in environment
values are rewritten when they lie inside them and otherwise passed as plain values, never mounted.
The container runs as a non-root user, carries ``workbench.run-id`` labels (so a restarted workbench
can find it), asks for GPUs through device requests, and is stopped and removed on cancel.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from workbench.errors import ExecutorError
from workbench.executors import records, remote_inputs
from workbench.executors.base import Channel, JobExit, JobOutputs, LaunchSpec
from workbench.executors.resources import check_resources, cpu_cores, gpu_count, memory_bytes
from workbench.executors.staging import (
    Checkout,
    Manifest,
    checkout_snapshot,
    copy_all_back,
    make_group_writable,
    run_folder,
)
from workbench.executors.streams import LineMerger, LineSplitter, classify, tail_file

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import docker as docker_sdk

    from workbench.versioning.versioned import VersionedProject

CONTAINER_WORKSPACE = "/workspace"
CONTAINER_RUN = "/workbench/run"
CONTAINER_LIB = "/opt/workbench/lib"
EVENTS_NAME = "events.jsonl"
LABEL_RUN = "workbench.run-id"
LABEL_PROJECT = "workbench.project"
DEFAULT_NONROOT = "1000:0"
"""Used when workbench itself runs as root: an arbitrary uid in group 0, as OpenShift does."""


API_TIMEOUT = 120
"""Seconds one Docker API call may take. Creating a container copies the whole image under the
``vfs`` storage driver (the one that works in unprivileged sandboxes), which on a busy disk took
over 30 s: a shorter limit failed healthy launches."""


def connect(timeout: int = API_TIMEOUT) -> docker_sdk.DockerClient:
    """A client for the Docker daemon of DOCKER_HOST (or the local socket), or a one-line error."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        detail = _short(exc)
        raise ExecutorError(
            f"Docker daemon not reachable at {where}: {detail}",
            "start Docker (e.g. 'sudo systemctl start docker'), or point DOCKER_HOST at a running daemon",
        ) from None
    return client


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def container_name(job_id: str) -> str:
    return "workbench-" + re.sub(r"[^a-zA-Z0-9_.-]", "-", job_id)[:60]


class DockerJob:
    """One job's container; see :class:`workbench.executors.base.Job`."""

    def __init__(self, client: docker_sdk.DockerClient, container: Any, events_file: Path | None,
                 facts: dict[str, str], on_end: Callable[[JobExit], None] | None = None, *,
                 resume: bool = False, output: Any = None, marker: bytes = b"") -> None:
        """``resume``: re-attach to a running container, reading only what it writes from now on.

        ``output``: an attach stream opened before the container was started, so that nothing a
        quick container prints can be lost (attaching after start races with its exit).
        ``events_file``: the side-channel file as seen from the host (None: no side channel);
        ``marker``: the side channel's stdout prefix.
        """
        self._client = client
        self._output = output
        self._container = container
        self._events_file = events_file
        self._facts = facts
        self._on_end = on_end
        self._resume = resume
        self._marker = marker
        self._events_start = (events_file.stat().st_size
                              if resume and events_file is not None and events_file.exists() else 0)
        self._lock = threading.Lock()
        self._cancelled = False
        self._exit: JobExit | None = None
        self._exit_code: int | None = None
        self._stream_done = threading.Event()
        self._merger = LineMerger()
        self._merger.add("docker-attach", self._follow_output)
        if events_file is not None:
            self._merger.add("docker-events", self._follow_events)

    # -- streaming -----------------------------------------------------------------------------
    def _follow_output(self, emit: Callable[[Channel, bytes], None]) -> None:
        splitters: dict[Channel, LineSplitter] = {"stdout": LineSplitter(marker=self._marker),
                                                  "stderr": LineSplitter(marker=self._marker)}
        try:
            stream = self._output
            if stream is None:
                stream = self._client.api.attach(
                    self._container.id, stdout=True, stderr=True, stream=True, logs=not self._resume,
                    demux=True,
                )
            for out, err in stream:
                pairs: tuple[tuple[Channel, bytes | None], ...] = (("stdout", out), ("stderr", err))
                for channel, chunk in pairs:
                    if chunk:
                        for line in splitters[channel].feed(chunk):
                            emit(*classify(channel, line, self._marker))
        except Exception:
            if not self._cancelled:  # lost mid-stream: the merger puts that on the run's record
                raise
            # cancelled: the container went away, what arrived is kept
        finally:
            for channel, splitter in splitters.items():
                for line in splitter.flush():
                    emit(*classify(channel, line, self._marker))
            self._stream_done.set()

    def _follow_events(self, emit: Callable[[Channel, bytes], None]) -> None:
        assert self._events_file is not None
        for line in tail_file(self._events_file, self._stream_done, start=self._events_start):
            emit("event", line)

    def lines(self) -> Iterator[tuple[Channel, bytes]]:
        yield from self._merger.lines()

    # -- ending --------------------------------------------------------------------------------
    def wait(self) -> JobExit:
        if self._exit is not None:
            return self._exit
        import docker

        code: int | None = None
        oom = False
        try:
            result = self._container.wait()
            code = int(result.get("StatusCode", -1))
            self._container.reload()
            oom = bool(self._container.attrs.get("State", {}).get("OOMKilled"))
        except docker.errors.NotFound:
            code = self._exit_code
        except docker.errors.DockerException as exc:
            if not self._cancelled:
                self._finish(JobExit(None, "lost", f"lost the container: {_short(exc)}"))
                return self._exit  # type: ignore[return-value]
        self._stream_done.wait(timeout=10)
        if self._cancelled:
            exit_ = JobExit(code, "cancelled", "cancelled: container stopped and removed")
        elif code == 0:
            exit_ = JobExit(0, "succeeded", "")
        elif oom:
            limit = self._facts.get("memory_limit", "")
            exit_ = JobExit(code, "failed", "OOMKilled: the container ran out of memory"
                            + (f" (limit {limit})" if limit else ""))
        else:
            exit_ = JobExit(code, "failed", exit_reason(code))
        self._remove()
        self._finish(exit_)
        return exit_

    def _finish(self, exit_: JobExit) -> None:
        self._exit = exit_
        if self._on_end is not None:
            self._on_end(exit_)

    def cancel(self) -> None:
        import docker

        with self._lock:
            if self._cancelled or self._exit is not None:
                return
            self._cancelled = True
        try:
            self._container.stop(timeout=5)
            result = self._container.wait(timeout=15)
            self._exit_code = int(result.get("StatusCode", -1))
        except docker.errors.DockerException:
            pass
        except Exception:  # requests' ReadTimeout on wait
            pass
        self._remove()

    def _remove(self) -> None:
        import docker

        try:
            self._container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise

    def describe(self) -> dict[str, str]:
        return dict(self._facts)


def _daemon_unresponsive(exc: BaseException) -> tuple[str, str]:
    """A Docker API call that timed out or lost its connection, in words."""
    return (f"the Docker daemon did not answer ({type(exc).__name__}); nothing was started",
            "try again when the Docker host is less busy ('docker info' shows whether it answers)")


def exit_reason(code: int | None) -> str:
    """Words for an exit code: 'exited with code 3', 'killed by SIGKILL (exit 137)'."""
    if code is None:
        return "exit code unknown"
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            return f"exited with code {code}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"killed by {name} (exit {code}){hint}"
    return f"exited with code {code}"


class DockerExecutor:
    """Runs a :class:`LaunchSpec` in a container of the local (or DOCKER_HOST) Docker daemon."""

    name = "docker"
    workspace = CONTAINER_WORKSPACE

    def __init__(self, ws: VersionedProject, *, checkout: Checkout | None = None) -> None:
        self.ws = ws
        self._checkout = checkout or (lambda snapshot, dest: checkout_snapshot(ws, snapshot, dest))
        self._client: docker_sdk.DockerClient | None = None
        self._manifests: dict[str, tuple[Path, Manifest]] = {}

    @property
    def client(self) -> docker_sdk.DockerClient:
        if self._client is None:
            self._client = connect()
        return self._client

    def image_for(self, spec: LaunchSpec) -> str:
        image = spec.image or self.ws.config.executor.image
        if not image:
            raise ExecutorError(
                "no image for the docker executor",
                "pass --image IMAGE or set image under [executor] in .workbench/config.toml",
            )
        return image

    def check(self, spec: LaunchSpec) -> None:
        import docker

        image = self.image_for(spec)
        check_resources(spec.gpus, spec.cpu, spec.memory)
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise ExecutorError(
                f"image {image} not found on the Docker host",
                f"run 'docker pull {image}' (or build it) first",
            ) from None
        except docker.errors.DockerException as exc:
            raise ExecutorError(f"cannot inspect image {image}: {_short(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise ExecutorError(*_daemon_unresponsive(exc)) from None

    def _remove_quietly(self, container: str) -> None:
        """Remove a container this launch made, if it exists (best effort: the daemon may be slow)."""
        import docker

        try:
            self.client.api.remove_container(container, force=True)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            pass

    # -- launching -----------------------------------------------------------------------------
    def launch(self, spec: LaunchSpec) -> DockerJob | remote_inputs.RemoteInputsJob:
        import docker

        self.check(spec)
        plan = remote_inputs.plan_for(self.ws, spec)  # a default remote: the job fetches its inputs
        image_name = self.image_for(spec)
        image = self.client.images.get(image_name)
        base = run_folder(self.ws, spec.job_id) / "docker"
        work, meta = base / "work", base / "meta"
        if base.exists():
            shutil.rmtree(base)
        work.mkdir(parents=True)
        (meta / "home").mkdir(parents=True)
        try:
            if plan is None:
                self._checkout(spec.input_snapshot, work)
            else:
                plan.save(base)
            user = f"{os.getuid()}:{os.getgid()}"
            if os.getuid() == 0:
                user = DEFAULT_NONROOT
                make_group_writable(base)
            manifest = Manifest.of(work)
            manifest.save(base / "manifest.json")
            kwargs = self._container_kwargs(spec, image_name, work, meta, user)
            if plan is not None:
                remote_inputs.adjust_docker(plan, kwargs, CONTAINER_WORKSPACE, CONTAINER_RUN)
            container = self.client.containers.create(**kwargs)
        except docker.errors.APIError as exc:
            shutil.rmtree(base, ignore_errors=True)
            raise ExecutorError(*_explain_api_error(exc, spec)) from None
        except requests.exceptions.RequestException as exc:
            # The daemon may still create the container after the client gave up: remove it by name.
            self._remove_quietly(container_name(spec.job_id))
            shutil.rmtree(base, ignore_errors=True)
            raise ExecutorError(*_daemon_unresponsive(exc)) from None
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        self._manifests[spec.job_id] = (work, manifest)
        digests = image.attrs.get("RepoDigests") or []
        facts = {
            "executor": "docker",
            "container_id": container.id,
            "container_name": container.name,
            "image": image_name,
            "image_id": image.id,
            "image_digest": digests[0] if digests else "",
            "user": user,
            "gpus": "" if spec.gpus in (None, 0) else str(spec.gpus),
            "memory_limit": spec.memory or "",
        }
        records.record_launch(self.ws, spec.job_id, "docker", {
            "container_id": container.id, "work": str(work), "events": str(meta / EVENTS_NAME),
        })
        try:
            # Attach first, then start (as `docker run` does): output is never lost to the race
            # between a quick container's exit and a late attach.
            output = self.client.api.attach(
                container.id, stdout=True, stderr=True, stream=True, logs=True, demux=True
            )
            container.start()
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            self._remove_quietly(container.id)
            shutil.rmtree(base, ignore_errors=True)
            records.mark(self.ws, spec.job_id, "ended", "failed to start")
            if isinstance(exc, docker.errors.APIError):
                raise ExecutorError(*_explain_api_error(exc, spec)) from None
            raise ExecutorError(*_daemon_unresponsive(exc)) from None

        def on_end(exit_: JobExit) -> None:
            records.mark(self.ws, spec.job_id, "ended", exit_.reason)

        side = spec.side
        job = DockerJob(self.client, container, meta / EVENTS_NAME if side else None, facts, on_end,
                        output=output, marker=side.marker if side else b"")
        return job if plan is None else remote_inputs.RemoteInputsJob(job, plan, meta)

    def _container_kwargs(self, spec: LaunchSpec, image: str, work: Path, meta: Path,
                          user: str) -> dict[str, Any]:
        import docker

        import workbench

        package_dir = Path(workbench.__file__).resolve().parent
        mapper = _PathMapper([
            (meta, CONTAINER_RUN),
            (work, CONTAINER_WORKSPACE),
            (package_dir, f"{CONTAINER_LIB}/workbench"),
            (spec.project_root.resolve(), CONTAINER_WORKSPACE),
        ])
        env = {key: mapper.map_value(value) for key, value in spec.env.items()}
        if spec.side is not None:
            env[spec.side.env] = f"{CONTAINER_RUN}/{EVENTS_NAME}"
        env["WORKBENCH_EXECUTOR"] = "docker"
        env["HOME"] = f"{CONTAINER_RUN}/home"
        env["PYTHONUNBUFFERED"] = "1"
        python_path = [CONTAINER_LIB, *[p for p in env.get("PYTHONPATH", "").split(":") if p]]
        env["PYTHONPATH"] = ":".join(dict.fromkeys(python_path))
        volumes: dict[str, dict[str, str]] = {
            str(work): {"bind": CONTAINER_WORKSPACE, "mode": "rw"},
            str(meta): {"bind": CONTAINER_RUN, "mode": "rw"},
            str(package_dir): {"bind": f"{CONTAINER_LIB}/workbench", "mode": "ro"},
        }
        workdir = CONTAINER_WORKSPACE
        if spec.workdir not in ("", "."):
            workdir = f"{CONTAINER_WORKSPACE}/{spec.workdir}"
        kwargs: dict[str, Any] = {
            "image": image,
            "command": list(spec.command),
            "name": container_name(spec.job_id),
            "environment": env,
            "working_dir": workdir,
            "user": user,
            "volumes": volumes,
            "labels": {LABEL_RUN: spec.job_id, LABEL_PROJECT: str(spec.project_root.resolve())},
            "detach": True,
            "stdin_open": False,
            "tty": False,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
        }
        count = gpu_count(spec.gpus)
        if count != 0:
            kwargs["device_requests"] = [
                docker.types.DeviceRequest(count=-1 if count is None else count, capabilities=[["gpu"]])
            ]
        if spec.cpu:
            kwargs["nano_cpus"] = int(cpu_cores(spec.cpu) * 1e9)
        if spec.memory:
            kwargs["mem_limit"] = memory_bytes(spec.memory)
        return kwargs

    # -- after the job -------------------------------------------------------------------------
    def output_folder(self, spec: LaunchSpec, job: Any) -> JobOutputs | None:
        """The container's workspace as the job left it, and the files it created or changed there
        (from the manifest taken after checkout). Nothing is copied into the project."""
        base = run_folder(self.ws, spec.job_id) / "docker"
        work = base / "work"
        remote = remote_inputs.remote_outputs(self.ws, base, work)  # pushed by the job to the remote
        if remote is not None:
            self._manifests.pop(spec.job_id, None)
            return remote
        if spec.job_id in self._manifests:
            work, manifest = self._manifests.pop(spec.job_id)
        elif (base / "manifest.json").exists():
            manifest = Manifest.load(base / "manifest.json")
        else:
            return None
        if not work.is_dir():
            return None

        def discard() -> None:
            shutil.rmtree(work, ignore_errors=True)
            (base / "manifest.json").unlink(missing_ok=True)

        return JobOutputs(work, manifest.changed(work), discard)

    def side_folder(self, spec: LaunchSpec) -> Path:
        """The host folder the job sees as ``/workbench/run`` (its events file; files a job's
        libraries leave for the run there, such as an MLflow store)."""
        return run_folder(self.ws, spec.job_id) / "docker" / "meta"

    def collect_outputs(self, spec: LaunchSpec, job: Any) -> list[str]:
        """Copy the files the job created or changed in its workspace into the project."""
        return copy_all_back(self.output_folder(spec, job), spec.project_root)


class _PathMapper:
    """Translate host paths in environment values into the paths the container sees.

    Only paths inside what is mounted anyway (the run's workspace and run folder, the workbench
    package, the project, which the workspace stands for) are rewritten. Any other value, a host
    folder in ``PYTHONPATH`` included, is passed through as text: an environment value never
    becomes a mount, so a job cannot be handed a host folder by naming it.
    """

    def __init__(self, roots: list[tuple[Path, str]]) -> None:
        self.roots = roots

    def map_path(self, text: str) -> str:
        path = Path(text)
        for host, inside in self.roots:
            try:
                rel = path.relative_to(host)
            except ValueError:
                continue
            return inside if rel == Path(".") else f"{inside}/{rel.as_posix()}"
        return text

    def map_value(self, value: str) -> str:
        if not value.startswith("/"):
            return value
        return ":".join(self.map_path(p) if p.startswith("/") else p for p in value.split(":"))


def _explain_api_error(exc: BaseException, spec: LaunchSpec) -> tuple[str, str]:
    text = _short(exc)
    if "could not select device driver" in text or "nvidia" in text.lower():
        return (f"Docker cannot give the container GPUs: {text}",
                "install the NVIDIA Container Toolkit on the Docker host, or run without --gpus")
    if "Conflict" in text and "already in use" in text:
        return (f"a container for job {spec.job_id} already exists",
                f"remove it with 'docker rm -f {container_name(spec.job_id)}'")
    return (f"Docker refused the container: {text}", "check the image, command and resource limits")
