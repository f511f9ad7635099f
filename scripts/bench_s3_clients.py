#!/usr/bin/env python3
"""Compare S3 clients for the remote transport: obstore and boto3 (start-up cost and throughput).

    python scripts/bench_s3_clients.py [--objects N] [--size BYTES]

Starts a SeaweedFS server on loopback, then for each installed client: the time for a fresh
interpreter to import it and build a client (best of 5), and the time to PUT then GET N objects
of SIZE bytes from 16 threads (what push and pull do). The figures behind docs/remote.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.remote.servers import ACCESS_KEY, SECRET_KEY, Seaweed  # noqa: E402

STARTUP = {
    "obstore": "from obstore.store import S3Store; S3Store('b', endpoint='http://127.0.0.1:1',"
               " region='us-east-1', access_key_id='a', secret_access_key='b')",
    "boto3": "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:1', region_name='us-east-1',"
             " aws_access_key_id='a', aws_secret_access_key='b')",
}


def startup(client: str) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", STARTUP[client]], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def clients(endpoint: str) -> dict[str, tuple[Any, Any]]:
    import obstore
    from obstore.store import S3Store

    store = S3Store("clients", endpoint=endpoint, region="us-east-1", access_key_id=ACCESS_KEY,
                    secret_access_key=SECRET_KEY, client_options={"allow_http": True})
    found: dict[str, tuple[Any, Any]] = {
        "obstore": (lambda k, d: obstore.put(store, k, d, mode="create"),
                    lambda k: bytes(obstore.get(store, k).bytes())),
    }
    try:
        import boto3  # not a Workbench dependency: pip install boto3 to compare
    except ImportError:
        print("boto3 is not installed: measuring obstore alone", file=sys.stderr)
        return found
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                      aws_secret_access_key=SECRET_KEY)
    found["boto3"] = (lambda k, d: s3.put_object(Bucket="clients", Key=k, Body=d, IfNoneMatch="*"),
                      lambda k: s3.get_object(Bucket="clients", Key=k)["Body"].read())
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--size", type=int, default=256 * 1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Seaweed(Path(tmp) / "server")
        try:
            server.start()
            server.make_bucket("clients")
            payload = [os.urandom(args.size) for _ in range(min(args.objects, 16))]
            total = args.objects * args.size / 1e6
            print(f"{args.objects} objects of {args.size} bytes, 16 threads, SeaweedFS on loopback")
            for name, (put, get) in clients(server.endpoint).items():
                keys = [f"{name}/{i}" for i in range(args.objects)]
                with ThreadPoolExecutor(16) as pool:
                    start = time.perf_counter()
                    list(pool.map(put, keys, [payload[i % len(payload)] for i in range(len(keys))]))
                    put_s = time.perf_counter() - start
                    start = time.perf_counter()
                    list(pool.map(get, keys))
                    get_s = time.perf_counter() - start
                print(f"{name:8} start-up {startup(name) * 1000:6.0f} ms   put {total / put_s:7.1f} MB/s"
                      f" ({args.objects / put_s:6.0f} obj/s)   get {total / get_s:7.1f} MB/s"
                      f" ({args.objects / get_s:6.0f} obj/s)")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
