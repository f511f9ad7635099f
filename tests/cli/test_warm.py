"""Warm start of ``workbench run`` (workbench/cli/warm.py, warm_server.py), with real processes: a
cold run starts a recorder, the next run is served by a forked worker, and what it records and
prints is what a cold run records and prints. Each test gives its CLI processes a ``PYTHONPATH``
entry of its own, which changes ``sys.path`` and so the recorder's address: tests never share a
recorder (nor use one a user started), and each stops its own.
"""

from __future__ import annotations

import _socket
import json
import marshal
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from workbench.cli import warm, warm_server

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="warm start is Linux only")

TIMEOUT = 60.0


def wait_until(check: Callable[[], object], what: str, timeout: float = TIMEOUT) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Project:
    """A project and the environment of its CLI processes (a private recorder address)."""

    def __init__(self, root: Path, marker: Path) -> None:
        self.root = root
        self.marker = str(marker)
        self.env = {**os.environ, warm.ENV_SWITCH: "1", warm.ENV_IDLE: "60",
                    "PYTHONPATH": os.pathsep.join(p for p in (self.marker, os.environ.get("PYTHONPATH"))
                                                  if p)}
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)

    def cli(self, *argv: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            [sys.executable, "-m", "workbench", *argv], cwd=self.root, env=env or self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)

    def run(self, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str, int]:
        """``workbench ARGV`` to completion: (exit status, stdout, stderr, the client's pid)."""
        proc = self.cli(*argv, env=env)
        out, err = proc.communicate(timeout=TIMEOUT)
        return proc.returncode, out, err, proc.pid

    def socket_name(self) -> bytes:
        """The recorder address these CLI processes use (computed by a process with their facts)."""
        code = "from workbench.cli import warm; print(warm.socket_name(warm.fingerprint()).hex())"
        done = subprocess.run([sys.executable, "-c", code], cwd=self.root, env=self.env, capture_output=True,
                              text=True, check=True, timeout=TIMEOUT)
        return bytes.fromhex(done.stdout.strip())

    def listening(self) -> bool:
        name = "@" + self.socket_name()[1:].decode()
        with open("/proc/net/unix", encoding="utf-8") as table:
            return any(line.split()[-1] == name for line in table if len(line.split()) >= 8)

    def recorders(self) -> list[int]:
        """Pids of the recorders started for this project's marker."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if b"workbench.cli.warm_server" in cmdline and self.marker.encode() in environ:
                found.append(int(entry))
        return found

    def start_recorder(self) -> None:
        """A cold run, which starts the recorder; returns once it listens."""
        code, _, err, _ = self.run("run", "--", sys.executable, "-c", "pass")
        assert code == 0, err
        wait_until(self.listening, "the warm recorder to listen")

    def run_row(self, run_id: str) -> sqlite3.Row:
        with sqlite3.connect(self.root / ".workbench" / "workbench.db") as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        assert row is not None
        return row  # type: ignore[no-any-return]

    def stop(self) -> None:
        for pid in self.recorders():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "proj"
    root.mkdir()
    marker = tmp_path / "warm-marker"
    marker.mkdir()
    proj = Project(root, marker)
    done = subprocess.run([sys.executable, "-m", "workbench", "init"], cwd=root, env=proj.env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    try:
        yield proj
    finally:
        proj.stop()


def _run_id(err: str) -> str:
    line = [ln for ln in err.splitlines() if ln.startswith("run ")][-1]
    return line.split()[1]


SCRIPT = """\
import sys
print("epoch=1 loss=0.5")
print("epoch=2 loss=0.25")
print("to stderr", file=sys.stderr)
open("model.txt", "w").write("weights " + sys.argv[1])
sys.exit(int(sys.argv[2]))
"""


def test_a_warm_run_records_and_prints_what_a_cold_run_does(project: Project) -> None:
    (project.root / "train.py").write_text(SCRIPT)
    project.start_recorder()
    cold_env = {**project.env, warm.ENV_SWITCH: "0"}
    results = {}
    for label, env in (("warm", project.env), ("cold", cold_env)):
        code, out, err, client = project.run("run", "--json", "--", sys.executable, "train.py", label, "3",
                                             env=env)
        info = json.loads(out)
        row = project.run_row(info["id"])
        results[label] = (code, info, row, client)
    (wcode, winfo, wrow, wclient), (ccode, cinfo, crow, cclient) = results["warm"], results["cold"]
    assert wrow["pid"] != wclient, "the warm run was recorded by the client itself: it ran cold"
    assert crow["pid"] == cclient
    assert wcode == ccode == 3
    assert winfo["status"] == cinfo["status"] == "failed"
    assert winfo["exit_code"] == cinfo["exit_code"] == 3
    assert winfo["metrics"] == cinfo["metrics"] == {"loss": 0.25}  # epoch is the step
    assert [o["path"] for o in winfo["outputs"]] == [o["path"] for o in cinfo["outputs"]] == ["model.txt"]
    assert winfo["command"][-2:] == ["warm", "3"]
    for info in (winfo, cinfo):  # each run's own output, logged in order
        code, out, err, _ = project.run("logs", info["id"])
        assert code == 0
        assert "epoch=1 loss=0.5" in out + err and "to stderr" in out + err


def test_a_run_typed_in_a_subfolder_runs_there_warm_or_cold(project: Project) -> None:
    """``cd src && workbench run -- python train.py`` runs ``src/train.py`` in ``src``, as the shell
    would: its relative paths are the subfolder's, and the run records that folder."""
    (project.root / "src").mkdir()
    (project.root / "src" / "train.py").write_text(SCRIPT)
    project.start_recorder()
    for label, switch in (("warm", "1"), ("cold", "0")):
        env = {**project.env, warm.ENV_SWITCH: switch}
        proc = subprocess.Popen([sys.executable, "-m", "workbench", "run", "--json", "--", sys.executable,
                                 "train.py", label, "0"], cwd=project.root / "src", stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        info = json.loads(out)
        assert info["workdir"] == "src" and info["metrics"] == {"loss": 0.25}
        assert [o["path"] for o in info["outputs"]] == ["src/model.txt"]
        assert (project.root / "src" / "model.txt").read_text() == f"weights {label}"
        recorded_by = project.run_row(info["id"])["pid"]
        assert (recorded_by != proc.pid) if label == "warm" else (recorded_by == proc.pid), label
        code, shown, _, _ = project.run("show", info["id"])
        assert code == 0 and "in        src/" in shown


def test_a_warm_run_streams_to_the_callers_stdout_and_stderr(project: Project) -> None:
    project.start_recorder()
    script = "import sys; print('out line', flush=True); print('err line', file=sys.stderr)"
    code, out, err, client = project.run("run", "--", sys.executable, "-c", script)
    assert code == 0
    assert project.run_row(_run_id(err))["pid"] != client
    assert out == "out line\n"
    assert "err line\n" in err and "succeeded" in err
    # the worker took the caller's cwd and environment
    probe = "import os; print(os.getcwd()); print(os.environ['WARM_PROBE'])"
    code, out, err, _ = project.run("run", "--", sys.executable, "-c", probe,
                                    env={**project.env, "WARM_PROBE": "from the caller"})
    assert code == 0, err
    assert out.splitlines() == [str(project.root), "from the caller"]


def _slow_warm_run(project: Project) -> subprocess.Popen[str]:
    """A warm ``workbench run`` whose child has printed 'ready' and sleeps."""
    project.start_recorder()
    (project.root / "slow.py").write_text("import time\nprint('ready', flush=True)\ntime.sleep(120)\n")
    proc = project.cli("run", "--", sys.executable, "slow.py")
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_ctrl_c_cancels_a_warm_run(project: Project) -> None:
    proc = _slow_warm_run(project)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130, err
    row = project.run_row(_run_id(err))
    assert row["pid"] != proc.pid
    assert row["status"] == "cancelled"


def test_a_killed_client_takes_its_worker_with_it(project: Project) -> None:
    proc = _slow_warm_run(project)
    with sqlite3.connect(project.root / ".workbench" / "workbench.db") as db:
        worker = db.execute("SELECT pid FROM runs WHERE status = 'running'").fetchone()[0]
    assert worker != proc.pid
    proc.kill()
    proc.communicate(timeout=TIMEOUT)

    def gone() -> bool:  # and reaped by the recorder: a zombie still reads as a live owner
        return not Path(f"/proc/{worker}").exists()

    wait_until(gone, "the worker to die with its client")
    code, out, _, _ = project.run("runs", "--json")  # its dead owner's run reads failed, as a cold one's does
    assert code == 0
    assert json.loads(out)[0]["status"] == "failed"


def test_concurrent_warm_runs_each_record_their_own(project: Project) -> None:
    project.start_recorder()
    (project.root / "one.py").write_text(
        "import sys, time\ntime.sleep(0.3)\nopen(f'out-{sys.argv[1]}.txt', 'w').write(sys.argv[1])\n"
        "print(f'score={sys.argv[1]}')\n")
    procs = [project.cli("run", "--json", "--", sys.executable, "one.py", str(n)) for n in range(4)]
    infos = []
    for proc in procs:
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        infos.append(json.loads(out))
    assert len({info["id"] for info in infos}) == 4
    for n, info in enumerate(infos):
        assert info["metrics"] == {"score": n}
        assert f"out-{n}.txt" in [o["path"] for o in info["outputs"]]
        assert project.run_row(info["id"])["pid"] != procs[n].pid


def test_a_caller_with_other_limits_runs_cold(project: Project) -> None:
    project.start_recorder()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lower = min(soft, 512) - 1

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (lower, hard))

    proc = project.cli("run", "--", sys.executable, "-c", "import resource; "
                       "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])", preexec_fn=limit)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert out.strip() == str(lower)
    assert project.run_row(_run_id(err))["pid"] == proc.pid  # recorded by the client: cold


def _facts(project: Project) -> dict[str, object]:
    """The facts a CLI process of this project hands the recorder."""
    code = ("import marshal, sys; from workbench.cli import warm; "
            "sys.stdout.write(marshal.dumps(warm.fingerprint()).hex())")
    done = subprocess.run([sys.executable, "-c", code], cwd=project.root, env=project.env,
                          capture_output=True, text=True, check=True, timeout=TIMEOUT)
    facts = marshal.loads(bytes.fromhex(done.stdout))
    assert isinstance(facts, dict)
    return facts


def _request(project: Project, facts: dict[str, object]) -> _socket.socket:
    """A connection to the project's recorder that has sent a request for ``workbench run -- true``."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(project.socket_name())
    request = {"facts": facts, "argv": ["run", "--", "true"], "argv0": "workbench", "path0": None,
               "cwd": str(project.root), "env": dict(project.env), "umask": 0o022,
               "stdio": [("utf-8", "strict", False, False)] * 3}
    sock.sendall(warm.frame(request))
    return sock


def _run_count(project: Project) -> int:
    code, out, err, _ = project.run("runs", "--json")
    assert code == 0, err
    return len(json.loads(out))


def test_the_recorder_refuses_other_facts_without_forking(project: Project) -> None:
    project.start_recorder()
    facts = _facts(project)
    facts["version"] = "another python"
    sock = _request(project, facts)
    try:
        reply = warm.read_message(sock)
    finally:
        sock.close()
    assert isinstance(reply, dict) and "refused" in reply and "pid" not in reply
    assert _run_count(project) == 1  # only the cold run that started the recorder


def test_a_worker_starts_only_on_its_clients_go_ahead(project: Project) -> None:
    """After sending its pid the worker waits for the client's answer: a client that gave up waiting
    (and runs cold) or died never also gets a warm run."""
    project.start_recorder()
    sock = _request(project, _facts(project))
    try:
        reply = warm.read_message(sock)
        assert isinstance(reply, dict) and "pid" in reply
        for _ in range(10):  # no answer yet: nothing is recorded (absence, so no timing can fail it)
            assert _run_count(project) == 1
            time.sleep(0.1)
        fds = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in (0, 1, 2))
        sock.sendmsg([warm.GO], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        assert warm.read_message(sock) == {"exit": 0}
    finally:
        sock.close()
    assert _run_count(project) == 2
    sock = _request(project, _facts(project))
    try:
        reply = warm.read_message(sock)
    finally:
        sock.close()  # gave up: no go-ahead
    assert isinstance(reply, dict) and "pid" in reply
    worker = int(reply["pid"])
    wait_until(lambda: not Path(f"/proc/{worker}").exists(), "the worker to exit")
    assert _run_count(project) == 2


def test_an_idle_recorder_exits(project: Project) -> None:
    project.env[warm.ENV_IDLE] = "0.5"
    project.start_recorder()
    wait_until(lambda: not project.recorders(), "the idle recorder to exit")
    assert not project.listening()


def test_warm_start_off_starts_no_recorder(project: Project) -> None:
    code, _, err, client = project.run("run", "--", sys.executable, "-c", "pass",
                                       env={**project.env, warm.ENV_SWITCH: "0"})
    assert code == 0, err
    assert project.run_row(_run_id(err))["pid"] == client
    assert not project.recorders()


def test_changed_source_stamps_are_seen(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("x = 1\n")
    st = source.stat()
    stamps = {str(source): (st.st_mtime_ns, st.st_size)}
    assert warm_server._unchanged(stamps)
    source.write_text("x = 22\n")
    assert not warm_server._unchanged(stamps)
    source.unlink()
    assert not warm_server._unchanged(stamps)


_PRELOAD_PROBE = """
import json, sys
from workbench.cli import warm_server
warm_server.preload()
threads = warm_server.threads()
before = set(sys.modules)
from workbench.cli import main
status = main(["run", "--", sys.executable, "train.py"])
after = sorted(m for m in set(sys.modules) - before if m.split(".")[0] == "workbench")
print(json.dumps({"status": status, "threads": threads, "imported": after}))
"""


def test_the_recorder_preloads_what_a_run_imports_and_holds_no_thread(project: Project) -> None:
    (project.root / "train.py").write_text("print('loss=0.5')\n")
    done = subprocess.run([sys.executable, "-c", _PRELOAD_PROBE], cwd=project.root, env=project.env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["status"] == 0
    assert report["threads"] == 1  # numpy's BLAS pool included: forking is safe
    assert report["imported"] == []  # every Workbench module of a run is imported before the fork


_SHUTDOWN_PROBE = """
import atexit, os, sys, threading, time
from pathlib import Path
from workbench.cli import warm_server
out = Path(sys.argv[1])
def late() -> None:
    time.sleep(0.2)
    (out / "thread").write_text("done")
threading.Thread(target=late).start()
atexit.register(lambda: (out / "atexit").write_text("ran"))
warm_server._shut_down()
os._exit(0)  # as the worker ends
"""


def test_a_worker_ends_as_the_interpreter_would(tmp_path: Path) -> None:
    """Before its ``os._exit`` the worker waits for threads that are not daemons and runs the atexit
    handlers, as a cold ``workbench run`` process does when it exits."""
    done = subprocess.run([sys.executable, "-c", _SHUTDOWN_PROBE, str(tmp_path)], capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "atexit").read_text() == "ran"


@pytest.fixture
def silent_recorder(project: Project) -> Iterator[_socket.socket]:
    """A listener at the project's recorder address that accepts and never answers (a recorder
    stopped with SIGSTOP, or swamped)."""
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    listener.bind(project.socket_name())
    listener.listen(8)
    try:
        yield listener
    finally:
        listener.close()


def test_a_silent_recorder_means_a_cold_run_after_the_wait(project: Project,
                                                           silent_recorder: _socket.socket) -> None:
    code, _, err, client = project.run("run", "--", sys.executable, "-c", "pass")
    assert code == 0, err
    assert project.run_row(_run_id(err))["pid"] == client  # recorded by the client itself
    assert _run_count(project) == 1


def test_ctrl_c_while_waiting_for_the_recorder_is_one_line(project: Project,
                                                           silent_recorder: _socket.socket) -> None:
    proc = project.cli("run", "--", sys.executable, "-c", "pass")
    fd, _ = silent_recorder._accept()  # type: ignore[attr-defined]  # the client has sent its request
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        os.close(fd)
    assert proc.returncode == 130
    assert err == "interrupted\n"
    assert _run_count(project) == 0


def test_a_watcher_starts_the_recorder_so_the_first_run_is_warm(project: Project) -> None:
    watcher = project.cli("watch")
    try:
        wait_until(project.listening, "the recorder started beside the watcher")
        code, _, err, client = project.run("run", "--", sys.executable, "-c", "pass")
        assert code == 0, err
        assert project.run_row(_run_id(err))["pid"] != client  # the first run, already warm
    finally:
        watcher.terminate()
        watcher.communicate(timeout=TIMEOUT)


def test_a_second_recorder_for_the_same_facts_leaves_at_once(project: Project) -> None:
    project.start_recorder()
    first = project.recorders()
    assert len(first) == 1
    code = ("import sys; from workbench.cli import warm_server; status = warm_server.serve(60); "
            "print(sorted(m for m in ('numpy', 'workbench.tracking.runner') if m in sys.modules)); "
            "raise SystemExit(status)")
    done = subprocess.run([sys.executable, "-P", "-c", code], cwd="/", env=project.env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # it left before importing the run path
    assert project.recorders() == first
