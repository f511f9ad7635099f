"""Fixtures and helpers of the drift tests: a reference file, and predictions and labels written
straight into the store (the capture side fills these tables for real). Imported by the test modules
(not a conftest: tests/monitor/conftest.py belongs to the capture tests)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workbench.core.workspace import Workspace

COLORS = ["red", "green", "blue"]
T0 = 1_700_000_000.0


def make_rows(rng: np.random.Generator, n: int,
              shift: dict[str, float] | None = None) -> list[dict[str, Any]]:
    shift = shift or {}
    a = rng.normal(shift.get("a", 0.0), 1.0, n)
    b = rng.normal(10 + shift.get("b", 0.0), 2.0, n)
    c = rng.exponential(1.0, n)
    color = rng.choice(COLORS, n, p=[0.5, 0.3, 0.2])
    return [{"a": float(a[i]), "b": float(b[i]), "c": float(c[i]), "color": str(color[i])} for i in range(n)]


def truth(row: dict[str, Any]) -> int:
    return int(row["a"] + (row["b"] - 10) / 2 > 0)


def write_reference(path: Path, rng: np.random.Generator, n: int = 5000) -> Path:
    rows = make_rows(rng, n)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "c", "color", "prediction", "label"])
        for row in rows:
            label = truth(row)
            predicted = label if rng.random() < 0.9 else 1 - label
            writer.writerow([row["a"], row["b"], row["c"], row["color"], predicted, label])
    return path


class Traffic:
    """Writes predictions (and labels) for one deployment, as the capture side would."""

    def __init__(self, ws: Workspace, deployment: str = "svc", model: str = "m", version: int = 1) -> None:
        self.ws, self.deployment, self.model, self.version = ws, deployment, model, version
        self.count = 0
        self.ts = T0

    def send(self, rows: list[dict[str, Any]], outputs: list[Any] | None = None, *,
             seconds_apart: float = 0.01) -> list[str]:
        outputs = outputs if outputs is not None else [truth(r) for r in rows]
        ids, values = [], []
        for row, output in zip(rows, outputs, strict=True):
            request = f"r{self.count}"
            self.count += 1
            self.ts += seconds_apart
            ids.append(request)
            values.append((self.deployment, 1, self.model, self.version, request, 0, self.ts, 1.0, "ok", "",
                           json.dumps(row), json.dumps(output)))
        with self.ws.atomic() as db:
            db.executemany(
                "INSERT INTO predictions (deployment, revision, model, version, request_id, row_index, ts,"
                " latency_ms, status, error, features, output) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", values)
        return ids

    def error(self, reason: str, n: int = 1) -> None:
        with self.ws.atomic() as db:
            for _ in range(n):
                self.ts += 0.01
                db.execute(
                    "INSERT INTO predictions (deployment, model, version, request_id, ts, status, error)"
                    " VALUES (?, ?, ?, ?, ?, 'error', ?)",
                    (self.deployment, self.model, self.version, f"r{self.count}", self.ts, reason))
                self.count += 1

    def label(self, request_ids: list[str], labels: list[Any]) -> None:
        with self.ws.atomic() as db:
            db.executemany(
                "INSERT OR REPLACE INTO feedback (deployment, request_id, row_index, label, ts)"
                " VALUES (?,?,0,?,?)",
                [(self.deployment, r, json.dumps(v), self.ts)
                 for r, v in zip(request_ids, labels, strict=True)])


@pytest.fixture(name="traffic")
def traffic_fixture(ws: Workspace) -> Iterator[Traffic]:
    yield Traffic(ws)


@pytest.fixture(name="baselined")
def baselined_fixture(ws: Workspace, traffic: Traffic, tmp_path: Path) -> Traffic:
    """A deployment ``svc`` serving ``m:1`` with a reference profile from a 5000-row CSV."""
    traffic.send(make_rows(np.random.default_rng(99), 1))
    reference = write_reference(tmp_path / "train.csv", np.random.default_rng(7))
    ws.monitor.baseline("svc", reference)
    return traffic
