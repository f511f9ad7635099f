"""The local executor: run the command as a child process on this machine, in the project folder.

The child gets its own session (process group), so cancelling reaches everything it started:
SIGINT first (a Python script gets its KeyboardInterrupt and can clean up), then SIGTERM, then
SIGKILL. Its stdout and stderr are read as bytes, line by line, and its side-channel file (the
spec's :class:`~workbench.executors.base.SideChannel`) is tailed, all merged into
:meth:`LocalJob.lines`. Nothing needs copying back: the job wrote into the project itself.

Resources: ``--gpus N`` is applied by ``CUDA_VISIBLE_DEVICES`` (the first N of the GPUs this machine
has, or of those an existing ``CUDA_VISIBLE_DEVICES`` lists); asking for more GPUs than the machine
has is refused. ``--cpu`` and ``--memory`` cannot be enforced on a plain child process, so they are
refused with a pointer to ``--executor docker``, never silently ignored.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from workbench.errors import ExecutorError
from workbench.executors.base import Channel, JobExit, LaunchSpec
from workbench.executors.resources import gpu_count
from workbench.executors.streams import LineMerger, LineSplitter, classify, tail_file

if TYPE_CHECKING:
    from workbench.versioning.versioned import VersionedProject

GRACE_SECONDS = 5.0
"""How long a cancelled job has after SIGINT (and again after SIGTERM) before the next signal."""


def exit_of(returncode: int, cancelled: bool) -> JobExit:
    """A Popen return code as a :class:`JobExit` (signals as 128 + N, as a shell reports them)."""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if cancelled:
            return JobExit(128 + number, "cancelled", f"cancelled ({name})")
        return JobExit(128 + number, "failed", f"killed by {name}")
    if cancelled:
        return JobExit(returncode, "cancelled", "cancelled")
    if returncode == 0:
        return JobExit(0, "succeeded")
    return JobExit(returncode, "failed", f"exited with code {returncode}")


class LocalJob:
    """A child process and the threads that read its output."""

    def __init__(self, proc: subprocess.Popen[bytes], side_file: Path | None, marker: bytes = b"") -> None:
        self.proc = proc
        self._exited = threading.Event()
        self._cancelled = False
        self._cancel_lock = threading.Lock()
        self._merger = LineMerger()
        assert proc.stdout is not None and proc.stderr is not None
        self._merger.add("stdout", self._pump(proc.stdout, "stdout", marker))
        self._merger.add("stderr", self._pump(proc.stderr, "stderr", marker))
        if side_file is not None:
            self._merger.add("side", self._tail(side_file))
        threading.Thread(target=self._reap, name="workbench-reap", daemon=True).start()

    def _reap(self) -> None:
        self.proc.wait()
        self._exited.set()

    @staticmethod
    def _pump(stream: IO[bytes], channel: Channel,
              marker: bytes) -> Callable[[Callable[[Channel, bytes], None]], None]:
        def produce(emit: Callable[[Channel, bytes], None]) -> None:
            splitter = LineSplitter(marker=marker)
            fd = stream.fileno()
            try:
                while True:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break
                    for line in splitter.feed(chunk):
                        emit(*classify(channel, line, marker))
                for line in splitter.flush():
                    emit(*classify(channel, line, marker))
            except Exception:
                # Keep the pipe drained to its end, so the job never blocks on a full pipe; the
                # merger reports the lines lost.
                try:
                    while os.read(fd, 1 << 16):
                        pass
                except OSError:
                    pass
                raise
            finally:
                stream.close()

        return produce

    def _tail(self, path: Path) -> Callable[[Callable[[Channel, bytes], None]], None]:
        def produce(emit: Callable[[Channel, bytes], None]) -> None:
            for line in tail_file(path, self._exited):
                emit("event", line)

        return produce

    def lines(self) -> Iterator[tuple[Channel, bytes]]:
        yield from self._merger.lines()

    def wait(self) -> JobExit:
        returncode = self.proc.wait()
        return exit_of(returncode, self._cancelled)

    def cancel(self) -> None:
        with self._cancel_lock:
            if self._cancelled or self.proc.poll() is not None:
                self._cancelled = self._cancelled or self.proc.poll() is None
                return
            self._cancelled = True
        threading.Thread(target=self._escalate, name="workbench-cancel", daemon=True).start()

    def kill(self) -> None:
        """Stop now (a second Ctrl+C): SIGKILL to the whole process group."""
        self._cancelled = True
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _escalate(self) -> None:
        for sig, grace in ((signal.SIGINT, GRACE_SECONDS), (signal.SIGTERM, GRACE_SECONDS)):
            self._signal(sig)
            if self._exited.wait(grace):
                return
        self._signal(signal.SIGKILL)

    def describe(self) -> dict[str, str]:
        return {"executor": "local", "pid": str(self.proc.pid), "host": socket.gethostname()}


class LocalExecutor:
    """Runs commands on this machine."""

    name = "local"
    workspace = ""
    """The job runs in the project folder (or the checkout it was given) itself."""

    def __init__(self, ws: VersionedProject | None = None) -> None:
        self.ws = ws

    @staticmethod
    def _cwd(spec: LaunchSpec) -> Path:
        return (spec.project_root / spec.workdir).resolve()

    def check(self, spec: LaunchSpec) -> None:
        if not spec.command:
            raise ExecutorError("no command to run",
                                "put the command after '--': workbench run -- python train.py")
        cwd = self._cwd(spec)
        if not cwd.is_dir():
            raise ExecutorError(f"working directory does not exist: {cwd}")
        program = spec.command[0]
        path_env = spec.env.get("PATH", os.environ.get("PATH", ""))
        if os.sep in program:
            candidate = Path(program) if os.path.isabs(program) else cwd / program
            found = candidate.is_file() and os.access(candidate, os.X_OK)
        else:
            found = shutil.which(program, path=path_env) is not None
        if not found:
            raise ExecutorError(f"command not found: {program}", "check the spelling, or install it")
        self._visible_gpus(spec)

    @staticmethod
    def _visible_gpus(spec: LaunchSpec) -> str | None:
        """The ``CUDA_VISIBLE_DEVICES`` value for the run (None: leave it alone), or ExecutorError."""
        limits = [f"--{name}" for name, value in (("cpu", spec.cpu), ("memory", spec.memory)) if value]
        if limits:
            raise ExecutorError(f"the local executor cannot enforce {' and '.join(limits)}",
                                "use --executor docker or kubernetes for resource limits, or drop "
                                + " and ".join(limits))
        count = gpu_count(spec.gpus)
        if count == 0:
            return None
        from workbench.host.gpus import gpu_facts, no_gpu_reason

        listed = spec.env.get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
        if listed is not None:
            devices = [d.strip() for d in listed.split(",") if d.strip()]
        else:
            devices = [str(f["index"]) for f in gpu_facts()]
        if not devices:
            raise ExecutorError(f"--gpus {spec.gpus}: this machine has no GPU to give: "
                                f"{no_gpu_reason() or 'CUDA_VISIBLE_DEVICES is empty'}",
                                "run without --gpus, or on a GPU host with --executor docker or kubernetes")
        if count is None:
            return None
        if count > len(devices):
            raise ExecutorError(f"--gpus {count}: this machine has only {len(devices)} GPU(s) "
                                f"({','.join(devices)})", f"ask for at most {len(devices)}, or 'all'")
        return ",".join(devices[:count])

    def launch(self, spec: LaunchSpec) -> LocalJob:
        self.check(spec)
        env = {**os.environ, **spec.env}
        visible = self._visible_gpus(spec)
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        side = spec.side
        if side is not None:
            env[side.env] = str(side.path)
        try:
            proc = subprocess.Popen(
                spec.command, cwd=self._cwd(spec), env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )
        except OSError as exc:
            raise ExecutorError(f"cannot start {spec.command[0]}: {exc.strerror or exc}") from None
        return LocalJob(proc, side.path if side else None, side.marker if side else b"")

    def collect_outputs(self, spec: LaunchSpec, job: object) -> list[str]:
        return []

    def output_folder(self, spec: LaunchSpec, job: object) -> None:
        """None: the job ran in the project (or in the checkout the runner gave it) itself."""
        return None
