"""Ingest from offsets: exactly once, through torn lines, retention, and a Workbench killed mid-ingest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.monitor.conftest import rows_request
from workbench.core.workspace import Workspace
from workbench.deploy.capture import spool_line
from workbench.errors import ConfigError
from workbench.monitor.ingest import Retention, parse_line, parse_lines, parse_retention


def _line(deployment: str, n: int, ts: float = 1000.0) -> str:
    head = {"deployment": deployment, "revision": 1, "model": "m", "version": "3", "request_id": f"q{n}",
            "row_index": 0, "ts": ts + n, "latency_ms": 1.5, "status": "ok", "error": ""}
    return spool_line(head, {"a": n, "b": "x"}, n % 3)


@pytest.mark.parametrize("decoder", ["orjson", "json"])
def test_lines_in_the_runtime_layout_or_any_json_object_are_read(
    decoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.monitor import ingest

    if decoder == "json":  # the plain install, without the extra "fast"
        monkeypatch.setattr(ingest, "_loads", json.loads)
    else:
        assert ingest._loads is not json.loads, "orjson is in the test extra"
    fast = _line("d", 5).encode()
    slow = json.dumps({**json.loads(fast), "features": {"a": 5, "b": "x"}}).encode()
    assert parse_line(fast, "d", 0.0) == parse_line(slow, "d", 0.0)
    assert parse_line(fast, "d", 0.0)[10:] == ('{"a":5,"b":"x"}', "2")  # type: ignore[index]
    assert parse_line(b"[1, 2]", "d", 0.0) is None and parse_line(fast[:-3], "d", 0.0) is None
    # A batch decodes the heads at once; a torn or foreign line in it falls back to its own parse.
    rows, bad = parse_lines([fast, b"{torn", slow, b'{"fl":3,"features":{"a"', fast], "d", 0.0)
    assert bad == 2 and rows == [parse_line(fast, "d", 0.0)] * 3
    # A head orjson refuses (NaN) sends its batch through json, row for row the same.
    odd = fast.replace(b'"latency_ms":1.5', b'"latency_ms":NaN')
    rows, bad = parse_lines([fast, odd], "d", 0.0)
    assert bad == 0 and rows[0] == parse_line(fast, "d", 0.0) and rows[1][7] != rows[1][7]  # NaN
    assert rows[1][10:] == rows[0][10:]


def _spool(ws: Workspace, deployment: str, lines: list[str], name: str = "r1-0.jsonl") -> Path:
    folder = ws.paths.monitor_spool / deployment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))
    return path


def _count(ws: Workspace, deployment: str) -> int:
    query = "SELECT count(*) FROM predictions WHERE deployment = ?"
    return int(ws.db.execute(query, (deployment,)).fetchone()[0])


def test_torn_lines_wait_and_bad_lines_are_skipped(ws: Workspace) -> None:
    path = _spool(ws, "d", [_line("d", 0), _line("d", 1)])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(_line("d", 2)[:20])  # a line still being written
    report = ws.predictions.ingest()
    assert (report.added, report.skipped) == (2, 0)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(_line("d", 2)[20:] + "\n" + "{not json\n" + _line("d", 3) + "\n")
    report = ws.predictions.ingest()
    assert (report.added, report.skipped) == (2, 1)
    assert _count(ws, "d") == 4
    [row] = ws.predictions.query("d", where="a == 3")
    assert (row.version, row.features, row.output, row.ts) == (3, {"a": 3, "b": "x"}, 0, 1003.0)
    # Forgetting the offsets (a lost store of offsets) re-reads everything and adds nothing.
    with ws.atomic() as conn:
        conn.execute("DELETE FROM prediction_sources")
    assert ws.predictions.ingest().added == 0 and _count(ws, "d") == 4


def test_retention_by_age_and_count(ws: Workspace) -> None:
    assert parse_retention("") == Retention()
    assert parse_retention("30d,1000") == Retention(30 * 86400.0, 1000)
    with pytest.raises(ConfigError, match=r"monitor\.retention"):
        parse_retention("forever")
    ws.config.monitor.retention = "100"
    _spool(ws, "d", [_line("d", n, ts=time.time()) for n in range(250)])
    assert ws.predictions.ingest().deleted == 150
    assert [r.request_id for r in ws.predictions.query("d", limit=1)] == ["q249"]
    assert _count(ws, "d") == 100
    ws.config.monitor.retention = "1h"
    _spool(ws, "d", [_line("d", n, ts=time.time() - 7200) for n in range(1000, 1010)])
    ws.predictions.ingest()
    # The old ones went at once, but for the table's newest row (ids are never reused).
    assert _count(ws, "d") == 101


INGESTER = """
import sys, time
from pathlib import Path
from workbench.core.workspace import Workspace
ws = Workspace.open(Path(sys.argv[1]))
while True:
    ws.predictions.ingest(clusters=False)
    time.sleep(0.01)
"""


def _consumed(ws: Workspace, source: str) -> int:
    row = ws.db.execute("SELECT consumed FROM prediction_sources WHERE source = ?", (source,)).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_killing_workbench_while_traffic_flows_loses_nothing(ws: Workspace, iris_deployment: str) -> None:
    bulk = _spool(ws, "bulk", [_line("bulk", n) for n in range(300_000)])
    source = bulk.relative_to(ws.paths.store_dir).as_posix()
    sent: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            ws.deployments.predict(iris_deployment, rows_request([[5.0 + n % 7 / 10, 3.1, 1.5, 0.2]],
                                                            request_id=f"t{n}"))
            sent.append(f"t{n}")
            n += 1

    sender = threading.Thread(target=traffic)
    sender.start()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    try:
        for _ in range(3):  # kill -9 the ingesting Workbench in the middle of the bulk file, three times
            before = _consumed(ws, source)
            proc = subprocess.Popen([sys.executable, "-c", INGESTER, str(ws.root)], env=env)
            deadline = time.monotonic() + 60
            while _consumed(ws, source) == before and time.monotonic() < deadline:
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert 0 < _consumed(ws, source) < bulk.stat().st_size
        deadline = time.monotonic() + 60
        while len(sent) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        sender.join()
    ws.predictions.ingest()
    assert _count(ws, "bulk") == 300_000
    stored = {r.request_id for r in ws.predictions.query(iris_deployment)}
    assert stored == set(sent) and len(sent) >= 20
