"""The local target's front door: one stable endpoint per deployment, and a supervisor for its replicas.

A local deployment runs N model servers on N ports. This process sits in front of them, as a
Service and a kubelet do on a cluster:

* **One endpoint.** It listens on one port, kept across deploys, scales and rollbacks (chosen at
  the first deploy, or with ``deploy --port``), and forwards each HTTP request to the next live
  replica (round robin, keep-alive connections per replica). A connection that fails before an
  answer is retried on the next replica, so a rollout, which stops the old replicas only after the
  front door has switched to the new ones, fails no request.
* **Restarts.** A replica that dies is started again on its own ports, with exponential backoff
  (1 s doubling to 30 s), and its new process id is written back to the deployment's record.

The replica list lives in the store (``deployments.runtime``, the one source of truth). The
service tells the front door to re-read it with ``POST /-/workbench/reload`` after every change and
before it stops old replicas. Run as ``python -m workbench.deploy.frontdoor DB NAME PORT``; it exits
when the deployment is undeployed or its record says another front door owns it.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from workbench.deploy import local

RELOAD_PATH = "/-/workbench/reload"
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authorization", "proxy-authenticate"}


class Backends:
    """The deployment's replicas as last read from the store, handed out round robin."""

    def __init__(self, db_path: Path, name: str, port: int) -> None:
        self.db_path, self.name, self.port = db_path, name, port
        self.lock = threading.Lock()
        self.replicas: list[local.Replica] = []
        self.runtime: dict[str, Any] = {}
        self.owned = True
        self._cycle: itertools.cycle[local.Replica] | None = None
        self.reload()

    def _connect(self) -> sqlite3.Connection:
        """The project's store, read-write but never created (a deleted project ends the process)."""
        uri = f"{self.db_path.absolute().as_uri()}?mode=rw"
        return sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)

    def _read(self) -> tuple[str, dict[str, Any]] | None:
        db = self._connect()
        try:
            row = db.execute("SELECT state, runtime FROM deployments WHERE name = ?", (self.name,)).fetchone()
        finally:
            db.close()
        return None if row is None else (str(row[0]), json.loads(row[1] or "{}"))

    def reload(self) -> None:
        found = self._read()
        with self.lock:
            if found is None or found[0] == "undeployed":
                self.owned, self.replicas = False, []
            else:
                self.runtime = found[1]
                door = self.runtime.get("frontdoor") or {}
                self.owned = int(door.get("port", self.port)) == self.port
                self.replicas = [local.Replica.from_json(r) for r in self.runtime.get("replicas", [])]
            self._cycle = itertools.cycle(self.replicas) if self.replicas else None

    def current(self) -> list[local.Replica]:
        with self.lock:
            return list(self.replicas)

    def order(self) -> list[local.Replica]:
        """Every replica once, starting with the next one in turn."""
        with self.lock:
            if self._cycle is None:
                return []
            first = next(self._cycle)
            i = self.replicas.index(first)
            return self.replicas[i:] + self.replicas[:i]

    def record_restart(self, old: local.Replica, new: local.Replica) -> bool:
        """Write the restarted replica's process into the record; False when it is no longer listed."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT runtime FROM deployments WHERE name = ?", (self.name,)).fetchone()
            runtime = json.loads(row[0] or "{}") if row else {}
            entries = runtime.get("replicas", [])
            for i, entry in enumerate(entries):
                if (entry["revision"], entry["index"], entry["http_port"]) == (
                        old.revision, old.index, old.http_port):
                    entries[i] = new.to_json()
                    db.execute("UPDATE deployments SET runtime = ? WHERE name = ?",
                               (json.dumps(runtime), self.name))
                    db.execute("COMMIT")
                    return True
            db.execute("ROLLBACK")
            return False
        finally:
            db.close()


class Supervisor(threading.Thread):
    """Restart dead replicas on their own ports with exponential backoff."""

    def __init__(self, backends: Backends, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.backends, self.interval = backends, interval
        self.dead_since: dict[tuple[int, int], float] = {}
        self.backoff: dict[tuple[int, int], float] = {}
        self.next_try: dict[tuple[int, int], float] = {}

    def run(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                self.check()
            except Exception as exc:  # a bad moment (store busy): try again next tick
                print(f"supervisor: {exc}", file=sys.stderr, flush=True)

    def check(self) -> None:
        now = time.monotonic()
        for replica in self.backends.current():
            key = (replica.revision, replica.index)
            if local.alive(replica):
                self.dead_since.pop(key, None)
                continue
            first = self.dead_since.setdefault(key, now)
            if now - first < 1.0 or now < self.next_try.get(key, 0.0):
                continue  # a replica being stopped on purpose leaves the record within a second
            self.backends.reload()
            if replica not in self.backends.replicas:
                self.dead_since.pop(key, None)
                continue
            self.restart(replica, key, now)

    def restart(self, replica: local.Replica, key: tuple[int, int], now: float) -> None:
        runtime = self.backends.runtime
        local.stop_replica(replica)  # reaps the process, removes a dead container
        new = local.start_replica(
            name=self.backends.name, index=replica.index, revision=replica.revision,
            model_dir=Path(replica.model_dir), venv=Path(runtime["venv"]), state_dir=Path(replica.log).parent,
            mode=replica.kind, labels=runtime.get("labels", {}),
            ports=(replica.http_port, replica.grpc_port, replica.metrics_port),
            spool_dir=Path(runtime["spool_dir"]) if runtime.get("spool_dir") else None,
            server=replica.server,
        )
        delay = min(30.0, self.backoff.get(key, 0.5) * 2)
        self.backoff[key], self.next_try[key] = delay, now + delay
        print(f"supervisor: replica {replica.index} of '{self.backends.name}' died; restarted "
              f"(next restart no sooner than {delay:.0f}s)", file=sys.stderr, flush=True)
        if not self.backends.record_restart(replica, new):
            local.stop_replica(new)
        self.backends.reload()


def _handler(backends: Backends) -> type[BaseHTTPRequestHandler]:
    local_conns = threading.local()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in one send, with Nagle off: two small writes would wait out the
        # client's delayed ACK (40 ms a request).
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _conn(self, replica: local.Replica) -> http.client.HTTPConnection:
            conns: dict[int, http.client.HTTPConnection] = local_conns.__dict__.setdefault("conns", {})
            conn = conns.get(replica.http_port)
            if conn is None:
                conn = conns[replica.http_port] = http.client.HTTPConnection(
                    "127.0.0.1", replica.http_port, timeout=60)
            return conn

        def _drop(self, replica: local.Replica) -> None:
            conns: dict[int, http.client.HTTPConnection] = local_conns.__dict__.setdefault("conns", {})
            conn = conns.pop(replica.http_port, None)
            if conn is not None:
                conn.close()

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if self.command == "POST" and self.path == RELOAD_PATH:
                backends.reload()
                return self._answer(200, {"replicas": len(backends.replicas)})
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            for attempt in range(2):
                for replica in backends.order():
                    conn = self._conn(replica)
                    try:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        response = conn.getresponse()
                        data = response.read()
                    except (OSError, http.client.HTTPException):
                        self._drop(replica)  # refused, reset or closed before answering: the next one
                        continue
                    self.send_response(response.status, response.reason)
                    for key, value in response.getheaders():
                        if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                if attempt == 0:
                    backends.reload()  # a rollout may have moved on: read the record once more
            return self._answer(503, {"error": f"no replica of '{backends.name}' answered"})

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def serve(db_path: Path, name: str, port: int) -> None:
    """Run the front door until the deployment goes away (checked every few seconds)."""
    backends = Backends(db_path, name, port)
    server = _Server(("127.0.0.1", port), _handler(backends))
    Supervisor(backends).start()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    while True:
        time.sleep(2.0)
        backends.reload()
        if not backends.owned:
            server.shutdown()
            return


def start(db_path: Path, name: str, port: int, log: Path) -> int:
    """Start the front door of ``name`` on ``port`` as its own process; returns once it listens."""
    import subprocess

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.deploy.frontdoor", str(db_path), name, str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    local._CHILDREN[proc.pid] = proc  # reaped by alive()/stop() when this process started it
    deadline = time.monotonic() + 30
    while not reload(port):
        if proc.poll() is not None:
            tail = log.read_bytes()[-400:].decode("utf-8", "replace").strip().splitlines()
            from workbench.errors import DeployError

            raise DeployError(f"the front door of '{name}' could not start on port {port}"
                              + (f": {tail[-1]}" if tail else ""), "choose another --port")
        if time.monotonic() > deadline:
            stop(proc.pid)
            from workbench.errors import DeployError

            raise DeployError(f"the front door of '{name}' did not answer on port {port}", "see " + str(log))
        time.sleep(0.05)
    return proc.pid


def reload(port: int, timeout: float = 10.0) -> bool:
    """Make the front door re-read the replica list now; False when nothing answers on ``port``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", RELOAD_PATH, body=b"")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def running(pid: int) -> bool:
    proc = local._CHILDREN.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        return b"workbench.deploy.frontdoor" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop(pid: int) -> None:
    import signal

    if not pid or not running(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc = local._CHILDREN.pop(pid, None)
    if proc is not None:
        proc.wait(timeout=5)


def main(argv: list[str]) -> int:
    db_path, name, port = Path(argv[0]), argv[1], int(argv[2])
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    serve(db_path, name, port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
