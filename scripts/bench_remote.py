#!/usr/bin/env python3
"""Benchmark ``workbench push``/``pull`` side by side with ``dvc push``/``dvc pull`` on one local SeaweedFS.

    python scripts/bench_remote.py            # 10,000 small files + 1 GiB
    python scripts/bench_remote.py --small    # 1,000 small files + 64 MiB (a quick run)
    python scripts/bench_remote.py --dvc /path/to/venv/bin/dvc

Measures, for both tools against the same bucket (different prefixes): the first push, a fresh
pull into a new folder (files checked out), an incremental push after appending 1 MiB to the big
file (bytes uploaded, read from the server's object sizes before and after), and a push with
nothing to do. Prints each figure and the ratio DVC / Workbench. Exits non-zero when DVC cannot be
found (``pip install 'dvc[s3]'``), or when the server cannot start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_workflows import timed  # noqa: E402
from tests.remote.servers import Seaweed, s3_env, s3_store  # noqa: E402

MIB = 1024 * 1024


def find_dvc(explicit: str | None) -> str | None:
    for candidate in (explicit, shutil.which("dvc"), str(Path(sys.executable).parent / "dvc")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def make_dataset(root: Path, small_files: int, big_bytes: int) -> None:
    data = root / "data"
    for i in range(small_files):
        folder = data / "small" / f"{i % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}.txt").write_bytes(os.urandom(512 + (i * 37) % 3500))
    with open(data / "big.bin", "wb") as out:
        left = big_bytes
        while left:
            n = min(left, 64 * MIB)
            out.write(os.urandom(n))
            left -= n


def bucket_bytes(endpoint: str, prefix: str) -> int:
    import obstore

    return sum(int(m["size"]) for page in obstore.list(s3_store(endpoint, "bench"), prefix) for m in page)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1,000 small files + 64 MiB")
    parser.add_argument("--dvc", default=None, help="the dvc executable (default: on PATH or beside python)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    dvc = find_dvc(args.dvc)
    if dvc is None:
        print("dvc not found: pip install 'dvc[s3]' (the bench extra) or pass --dvc PATH", file=sys.stderr)
        return 1
    small_files, big = (1000, 64 * MIB) if args.small else (10_000, 1024 * MIB)
    tmp = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    server = Seaweed(tmp / "server")
    try:
        server.start()
        server.make_bucket("bench")
        env = {**os.environ, **s3_env(server.endpoint), "PYTHONPATH": str(ROOT)}
        wb = [sys.executable, "-m", "workbench"]
        print(f"dataset: {small_files} small files + {big // MIB} MiB; SeaweedFS at {server.endpoint}")
        results: dict[str, tuple[float, float]] = {}
        sizes: dict[str, tuple[int, int]] = {}

        # -- Workbench ---------------------------------------------------------------------
        a = tmp / "wb-a"
        a.mkdir()
        make_dataset(a, small_files, big)
        shutil.copytree(a / "data", tmp / "dvc-a" / "data")
        timed([*wb, "init"], a, env)
        timed([*wb, "snapshot"], a, env)
        timed([*wb, "remote", "add", "origin", "s3://bench/wb"], a, env)
        wb_push = timed([*wb, "push"], a, env)
        wb_clone = timed([*wb, "clone", "s3://bench/wb", str(tmp / "wb-b")], tmp, env)
        with open(a / "data/big.bin", "ab") as out:
            out.write(os.urandom(MIB))
        timed([*wb, "snapshot"], a, env)
        before = bucket_bytes(server.endpoint, "wb/")
        wb_incr = timed([*wb, "push"], a, env)
        wb_incr_bytes = bucket_bytes(server.endpoint, "wb/") - before
        wb_noop = min(timed([*wb, "push"], a, env) for _ in range(3))

        # -- DVC -----------------------------------------------------------------------------
        d = tmp / "dvc-a"
        dvc_env = {**env, "DVC_NO_ANALYTICS": "1"}
        timed([dvc, "init", "--no-scm", "-q"], d, dvc_env)
        timed([dvc, "config", "core.autostage", "false"], d, dvc_env)
        timed([dvc, "remote", "add", "-d", "s3", "s3://bench/dvc"], d, dvc_env)
        timed([dvc, "remote", "modify", "s3", "endpointurl", server.endpoint], d, dvc_env)
        timed([dvc, "add", "data"], d, dvc_env)
        dvc_push = timed([dvc, "push"], d, dvc_env)
        b = tmp / "dvc-b"
        b.mkdir()
        shutil.copytree(d / ".dvc", b / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
        shutil.copy(d / "data.dvc", b / "data.dvc")
        dvc_pull = timed([dvc, "pull"], b, dvc_env)
        with open(d / "data/big.bin", "ab") as out:
            out.write(os.urandom(MIB))
        timed([dvc, "add", "data"], d, dvc_env)
        before = bucket_bytes(server.endpoint, "dvc/")
        dvc_incr = timed([dvc, "push"], d, dvc_env)
        dvc_incr_bytes = bucket_bytes(server.endpoint, "dvc/") - before
        dvc_noop = min(timed([dvc, "push"], d, dvc_env) for _ in range(3))

        results = {"first push": (wb_push, dvc_push), "fresh pull (clone)": (wb_clone, dvc_pull),
                   "push after +1 MiB": (wb_incr, dvc_incr), "push, nothing to do": (wb_noop, dvc_noop)}
        sizes = {"bytes uploaded after +1 MiB": (wb_incr_bytes, dvc_incr_bytes)}
        print(f"{'':28} {'workbench':>12} {'dvc':>12} {'dvc/workbench':>14}")
        for label, (w, v) in results.items():
            print(f"{label:28} {w:>11.2f}s {v:>11.2f}s {v / w:>13.1f}x")
        for label, (w, v) in sizes.items():
            print(f"{label:28} {w / MIB:>9.2f}MiB {v / MIB:>9.2f}MiB {v / max(w, 1):>13.1f}x")
        verdicts = [
            ("first push at least 2x faster than dvc", dvc_push >= 2 * wb_push),
            ("fresh pull at least 2x faster than dvc", dvc_pull >= 2 * wb_clone),
            ("incremental push under 8 MiB", wb_incr_bytes < 8 * MIB),
            ("push with nothing to do under 0.5 s", wb_noop < 0.5),
        ]
        for text, ok in verdicts:
            print(f"{'met ' if ok else 'MISSED'}  {text}")
        return 0
    finally:
        server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
