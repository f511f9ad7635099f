#!/usr/bin/env python
"""Benchmark the local deploy target: requests/s and p50/p99 latency at 1, 8 and 32 concurrent clients
for a small scikit-learn model (iris, logistic regression) with 1, 2 and 4 replicas, through the
deployment's stable endpoint (the front door) side by side with calling the replicas directly (what
the front door costs); failed requests while a new version rolls out and while a replica is killed
(target 0 for both); and the time from deploy to the first successful prediction. Then one line per
model server (MLServer, KServe: ``deploy --server``): deploy -> first prediction and req/s through the
endpoint with one replica and 8 clients. Runs in a throw-away project; the serving venvs are built
first if needed (not timed).
Usage: .venv/bin/python scripts/bench_serve.py [--seconds 5] [--replicas 1,2,4] [--runtime process|docker]
       [--servers mlserver,kserve]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REQUEST = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [6.7, 3.0, 5.2, 2.3]}]}


def client(
    ports: list[int], name: str, stop: float, out: list[float], errors: list[int], offset: int,
    stop_at: list[float] | None = None,
) -> None:
    body = json.dumps(REQUEST)
    conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=30) for p in ports]
    i = offset
    while time.perf_counter() < (stop_at[0] if stop_at is not None else stop):
        conn = conns[i % len(conns)]
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", f"/v2/models/{name}/infer", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
        (out.append(time.perf_counter() - t0) if ok else errors.append(1))


def load(ports: list[int], name: str, clients: int, seconds: float) -> tuple[float, float, float, int]:
    latencies: list[float] = []
    errors: list[int] = []
    stop = time.perf_counter() + seconds
    threads = [
        threading.Thread(target=client, args=(ports, name, stop, latencies, errors, k))
        for k in range(clients)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return len(latencies) / elapsed, p50, p99, len(errors)


def during(ports: list[int], action: object, clients: int = 8) -> int:
    """Failed requests from ``clients`` threads while ``action()`` runs (and a second after)."""
    latencies: list[float] = []
    errors: list[int] = []
    stop = [time.perf_counter() + 3600]
    threads = [threading.Thread(target=client, args=(ports, "iris", 0, latencies, errors, k, stop))
               for k in range(clients)]
    for t in threads:
        t.start()
    try:
        action()  # type: ignore[operator]
        time.sleep(1.0)
    finally:
        stop[0] = 0
        for t in threads:
            t.join()
    return len(errors)


def first_prediction(ws: object, deploy: object) -> tuple[object, float]:
    """Deploy, then wait for the first successful prediction: ``(info, seconds)``."""
    t0 = time.perf_counter()
    info = deploy()  # type: ignore[operator]
    while True:
        try:
            ws.deployments.predict(info.name, REQUEST)  # type: ignore[attr-defined]
            return info, time.perf_counter() - t0
        except Exception:
            time.sleep(0.01)


def server_lines(ws: object, ref: object, names: list[str], seconds: float) -> None:
    """One line per model server, same model, one replica, 8 clients through the endpoint."""
    import sklearn

    from workbench.deploy import servers, serving

    runtime = serving.runtime_for("sklearn")
    print(f"\nmodel servers side by side, 1 replica, 8 clients, {seconds:.0f} s, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'server':>8} {'deploy->first s':>16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name in names:
        servers.ensure_venv(servers.get(name), runtime, sklearn.__version__)  # not timed
        deployment = f"iris-{name}"
        info, first = first_prediction(ws, lambda d=deployment, n=name: ws.deployments.deploy(  # type: ignore[attr-defined]
            ref, name=d, replicas=1, server=n))
        try:
            door = [int(info.endpoint.rsplit(":", 1)[1])]  # type: ignore[attr-defined]
            rps, p50, p99, errs = load(door, deployment, 8, seconds)
            print(f"{name:>8} {first:>16.2f} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f} {errs:>7}")
        finally:
            ws.deployments.undeploy(deployment)  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--replicas", default="1,2,4", help="replica counts, comma-separated")
    parser.add_argument("--runtime", choices=["process", "docker", "auto"], default="process")
    parser.add_argument("--servers", default="mlserver,kserve",
                        help="model servers compared on one line each ('' skips the comparison)")
    args = parser.parse_args()
    os.environ["WORKBENCH_LOCAL_RUNTIME"] = args.runtime

    import joblib
    import sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from workbench.core.workspace import Workspace
    from workbench.deploy import serving
    from workbench.deploy.types import ModelRef

    print(
        f"building/finding the serving venv (MLServer {serving.MLSERVER_VERSION}, "
        f"scikit-learn {sklearn.__version__})"
    )
    serving.ensure_serve_venv(serving.runtime_for("sklearn"), sklearn.__version__)
    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = Workspace.init(Path(tmp))
        x, y = load_iris(return_X_y=True)
        joblib.dump(LogisticRegression(max_iter=500).fit(x, y), Path(tmp) / "model.joblib")
        digest = ws.versions.put_file(Path(tmp) / "model.joblib")
        ref = ModelRef("iris", "1", digest, "sklearn", sklearn.__version__, None, "model.joblib")
        counts = [int(c) for c in args.replicas.split(",")]
        t0 = time.perf_counter()
        info = ws.deployments.deploy(ref, name="iris", replicas=counts[0])
        while True:
            try:
                ws.deployments.predict("iris", REQUEST)
                break
            except Exception:
                time.sleep(0.01)
        first = time.perf_counter() - t0
        try:
            print(f"\nlocal target, {args.runtime}, {os.cpu_count()} CPUs, load average "
                  f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}, {args.seconds:.0f} s per level")
            print(f"deploy -> first successful prediction: {first:.2f} s")
            print(f"{'replicas':>8} {'clients':>8} {'endpoint req/s':>15} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'errors':>7} {'direct req/s':>13} {'endpoint/direct':>16}")
            for count in counts:
                info = ws.deployments.scale("iris", count) if info.replicas != count else info
                door = [int(info.endpoint.rsplit(":", 1)[1])]
                direct = [int(u.rsplit(":", 1)[1]) for u in info.endpoints]
                for clients in (1, 8, 32):
                    rps, p50, p99, errs = load(door, "iris", clients, args.seconds)
                    base, _, _, _ = load(direct, "iris", clients, args.seconds)
                    print(f"{count:>8} {clients:>8} {rps:>15.0f} {p50:>8.2f} {p99:>8.2f} {errs:>7} "
                          f"{base:>13.0f} {rps / base:>16.2f}")
            door = [int(info.endpoint.rsplit(":", 1)[1])]
            v2 = ModelRef("iris", "2", digest, "sklearn", sklearn.__version__, None, "model.joblib")
            failed = during(door, lambda: ws.deployments.deploy(v2, name="iris"))
            print(f"failed requests during a rollout to a new version (8 clients): {failed} (target 0)")
            victim = ws.deployments.get("iris")
            from workbench.deploy import local

            replica = local.Replica.from_json(json.loads(ws.db.execute(
                "SELECT runtime FROM deployments WHERE name='iris'").fetchone()[0])["replicas"][0])

            def kill_and_wait() -> None:
                os.kill(replica.pid, 9)
                while ws.deployments.get("iris").ready < victim.replicas:
                    time.sleep(0.1)

            if victim.replicas < 2:
                print("replica kill: skipped (one replica: nothing else can answer while it restarts)")
            else:
                failed = during(door, kill_and_wait)
                print(f"failed requests while one of {victim.replicas} replicas is killed and restarted "
                      f"(8 clients): {failed} (target 0)")
        finally:
            ws.deployments.undeploy("iris")
        try:
            server_lines(ws, ref, [n for n in args.servers.split(",") if n], args.seconds)
        finally:
            ws.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
