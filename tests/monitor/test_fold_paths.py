"""The fold gives the same buckets whichever parser read the numbers (orjson, or NumPy's fallback)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from workbench.core.workspace import Workspace
from workbench.monitor import extract
from workbench.monitor.profile import build_profile

FEATURES = 6
TRICKY = ["0", "-0", "-0.0", "1e-7", "-2.5E+3", "123456789012345678", "0.1", "1.5e300",
          "5e-324", "3.141592653589793238", "9007199254740993"]


def _feature_text(rng: np.random.Generator, i: int) -> str:
    values = [f"{v:.17g}" for v in rng.normal(size=FEATURES)]
    values[i % FEATURES] = TRICKY[i % len(TRICKY)]  # ints, exponents, signed zeros, extremes
    if i == 777:  # one missing value: that range takes the general path on both sides
        values[2] = "null"
    return "{" + ",".join(f'"f{k}":{v}' for k, v in enumerate(values)) + "}"


def _buckets(ws: Workspace) -> list[tuple[Any, ...]]:
    return ws.db.execute("SELECT deployment, model, version, seq, minute, id_min, id_max, rows, errors,"
                         " counts, conf_sum, conf_rows, reasons FROM monitor_buckets ORDER BY seq").fetchall()


def _refold(ws: Workspace) -> list[tuple[Any, ...]]:
    with ws.atomic() as db:
        db.execute("DELETE FROM monitor_buckets")
        db.execute("DELETE FROM monitor_cursors")
    ws.monitor.fold("svc")
    return _buckets(ws)


@pytest.mark.skipif(extract._orjson_loads is None, reason="orjson (extra 'fast') not installed")
def test_orjson_and_numpy_paths_fold_identical_buckets(ws: Workspace,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(2000, FEATURES))
    table: dict[str, list[Any]] = {f"f{i}": reference[:, i].tolist() for i in range(FEATURES)}
    table["prediction"] = (reference[:, 0] > 0).astype(int).tolist()
    ws.monitor.save_profile("model", 1, "test", build_profile(table))
    rows = [("svc", 1, "model", 1, f"r{i}", 0, 1.7e9 + i * 0.37, 1.0, "ok" if i % 97 else "error",
             "" if i % 97 else "bad shape", _feature_text(rng, i), str(i % 2)) for i in range(3000)]
    with ws.atomic() as db:
        db.executemany("INSERT INTO predictions (deployment, revision, model, version, request_id, row_index,"
                       " ts, latency_ms, status, error, features, output) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                       rows)
    monkeypatch.setattr("workbench.monitor.windows.SPAN", 500)  # several ranges: fast ones and the null one
    fast = _refold(ws)
    assert sum(r[7] + r[8] for r in fast) == 3000
    monkeypatch.setattr(extract, "_orjson_loads", None)
    assert _refold(ws) == fast  # every bucket, every count and sum bit for bit


def test_number_parsers_agree_on_the_bits() -> None:
    text = ",".join(TRICKY + [f"{v:.17g}" for v in np.random.default_rng(1).normal(size=500)])
    fast, plain = extract.numbers_of(text), extract.numbers_of(text, fast=False)
    assert fast.size == plain.size == len(TRICKY) + 500
    assert np.array_equal(np.abs(fast), np.abs(plain))  # bit for bit but the sign of zero
    assert np.array_equal(fast[fast != 0].view(np.int64), plain[plain != 0].view(np.int64))
    for other in ("1,null,2", '1,"x",2', "1,true", "1,NaN"):  # not all numbers: never the fast path
        assert extract.numbers_of(other).size == extract.numbers_of(other, fast=False).size < 3 + 1
