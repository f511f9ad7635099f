#!/usr/bin/env python
"""Benchmark the local deploy target: requests/s and p50/p99 latency at 1, 8 and 32 concurrent clients
for a small scikit-learn model (iris, logistic regression), and the time from deploy to the first
successful prediction. Runs in a throw-away project; the serving venv is built first if needed (not
timed). Usage: .venv/bin/python scripts/bench_serve.py [--seconds 5] [--replicas 1] [--runtime process|docker]
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
    ports: list[int], name: str, stop: float, out: list[float], errors: list[int], offset: int
) -> None:
    body = json.dumps(REQUEST)
    conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=30) for p in ports]
    i = offset
    while time.perf_counter() < stop:
        conn = conns[i % len(conns)]
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", f"/v2/models/{name}/infer", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
        except OSError:
            ok = False
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--runtime", choices=["process", "docker", "auto"], default="process")
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
        t0 = time.perf_counter()
        info = ws.deployments.deploy(ref, name="iris", replicas=args.replicas)
        while True:
            try:
                ws.deployments.predict("iris", REQUEST)
                break
            except Exception:
                time.sleep(0.01)
        first = time.perf_counter() - t0
        ports = [int(u.rsplit(":", 1)[1]) for u in info.endpoints]
        try:
            print(
                f"\nlocal target, {args.runtime}, {args.replicas} replica(s), {os.cpu_count()} CPUs, "
                f"{args.seconds:.0f} s per level"
            )
            print(f"deploy -> first successful prediction: {first:.2f} s")
            print(f"{'clients':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
            for clients in (1, 8, 32):
                rps, p50, p99, errs = load(ports, "iris", clients, args.seconds)
                print(f"{clients:>8} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f} {errs:>7}")
            snap = ws.deployments.metrics("iris")
            print(
                f"server-side metrics: {snap.requests_total:.0f} infer requests, "
                f"{snap.errors_total:.0f} errors"
            )
        finally:
            ws.deployments.undeploy("iris")
            ws.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
