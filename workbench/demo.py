"""Generate a demo project with real runs: scikit-learn on the digits dataset, a few hyperparameters.

``make_demo(dest)`` writes a small project (a data preparation script, a training script that
takes its hyperparameters from argparse and prints metrics per epoch, a README), snapshots it,
and records real runs through the tracking service (``ws.runs.execute``, what ``workbench run``
does): one that prepares ``data/digits.csv`` from the dataset scikit-learn ships, a small sweep of
SGD classifiers, a random forest, and one run that fails. Then it edits the training script and
snapshots again, so History has something to show. No network, nothing outside ``dest``.

``deterministic=True`` (for snapshot tests and screenshots) opens the project with a
:class:`FrozenClock` (advanced by hand, step by step), numbered run ids and a counting snapshot
salt, passed to the Workspace and through it to the tracking and versioning services, so two
generations record the same ids and times. Nothing is patched: the jobs themselves and every
timeout keep the real clock. No Textual here: the CLI (``workbench demo``), the TUI tests and
scripts/export_screenshots.py call it.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.core.workspace import Workspace
from workbench.paths import IGNORE_FILENAME
from workbench.tracking.request import RunRequest

DEMO_EPOCH = 1_767_225_600.0  # 2026-01-01 00:00 UTC
Progress = Callable[[str], None]

PREPARE_PY = '''"""Export scikit-learn's bundled digits dataset to data/digits.csv (no download)."""
import csv
from pathlib import Path

from sklearn.datasets import load_digits

digits = load_digits()
out = Path("data/digits.csv")
out.parent.mkdir(exist_ok=True)
with out.open("w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow([f"px{i}" for i in range(64)] + ["label"])
    for row, label in zip(digits.data, digits.target):
        writer.writerow([int(v) for v in row] + [int(label)])
print(f"rows: {len(digits.target)}")
'''

TRAIN_PY = '''"""Train a digits classifier: hyperparameters from the command line, metrics to stdout."""
import argparse
import csv
from pathlib import Path

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--model", choices=["sgd", "forest"], default="sgd")
parser.add_argument("--alpha", type=float, default=1e-4)
parser.add_argument("--epochs", type=int, default=15)
parser.add_argument("--n-estimators", type=int, default=50)
parser.add_argument("--max-depth", type=int, default=8)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

with open("data/digits.csv") as fh:
    rows = list(csv.reader(fh))[1:]
data = np.array(rows, dtype=float)
X, y = data[:, :-1] / 16.0, data[:, -1].astype(int)
X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=args.seed)

if args.model == "sgd":
    model = SGDClassifier(loss="log_loss", alpha=args.alpha, random_state=args.seed)
    classes = np.unique(y)
    for epoch in range(1, args.epochs + 1):
        model.partial_fit(X_train, y_train, classes=classes)
        proba = np.clip(model.predict_proba(X_val), 1e-9, 1)
        loss = float(-np.mean(np.log(proba[np.arange(len(y_val)), y_val])))
        print(f"epoch={epoch} loss={loss:.4f} val_acc={model.score(X_val, y_val):.4f}"
              f" train_acc={model.score(X_train, y_train):.4f}")
else:
    model = RandomForestClassifier(n_estimators=args.n_estimators, max_depth=args.max_depth,
                                   random_state=args.seed)
    model.fit(X_train, y_train)
    print(f"val_acc: {model.score(X_val, y_val):.4f}")

Path("models").mkdir(exist_ok=True)
joblib.dump(model, "models/digits.joblib")
print(f"accuracy: {model.score(X_val, y_val):.4f}")
'''

README = """# Workbench demo project

Handwritten digits (scikit-learn's bundled dataset) classified with SGD and a random forest.

    workbench run -- python train.py --alpha 0.001 --epochs 20
    workbench runs
    workbench          # the TUI
"""

RUNS: list[tuple[str, list[str]]] = [
    ("sgd-a1e-4", ["train.py", "--alpha", "0.0001", "--epochs", "15"]),
    ("sgd-a1e-3", ["train.py", "--alpha", "0.001", "--epochs", "15"]),
    ("sgd-a1e-2", ["train.py", "--alpha", "0.01", "--epochs", "15"]),
    ("sgd-a1e-3-long", ["train.py", "--alpha", "0.001", "--epochs", "30"]),
    ("forest-50", ["train.py", "--model", "forest", "--n-estimators", "50", "--max-depth", "8"]),
    ("forest-200", ["train.py", "--model", "forest", "--n-estimators", "200", "--max-depth", "12"]),
    ("typo", ["train.py", "--model", "svm"]),
]


class FrozenClock:
    """A :class:`workbench.clock.Clock` that stands still until :meth:`step` moves it."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._lock = threading.Lock()

    def step(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def now(self) -> float:
        with self._lock:
            return self._now


def numbered_run_ids() -> Callable[[], str]:
    """``demo00000001``, ``demo00000002`` ...: run ids that repeat from one generation to the next."""
    counter = itertools.count(1)
    return lambda: f"demo{next(counter):08d}"


def counting_salt() -> Callable[[], tuple[int, str]]:
    """A snapshot salt with a fixed pid and a counter in place of random bytes."""
    counter = itertools.count(1)
    return lambda: (4242, next(counter).to_bytes(8, "big").hex())


def _execute(ws: Workspace, command: list[str], name: str) -> Any:
    return ws.runs.execute(RunRequest(tuple(command), name=name))


PIPELINE = """\
params: params.yaml
stages:
  prepare:
    cmd: python prepare.py
    inputs: [prepare.py]
    outputs: [data/digits.csv]
  train:
    cmd: python train.py --alpha {alpha} --epochs {epochs}
    inputs: [train.py, data/digits.csv]
    outputs: [models/digits.joblib]
    params: [alpha, epochs]
  report:
    cmd: python report.py
    inputs: [report.py, models/digits.joblib, data/digits.csv]
    outputs: [report.json]
"""
REPORT_PY = """import csv, json
import joblib
import numpy as np
rows = np.array(list(csv.reader(open("data/digits.csv")))[1:], dtype=float)
model = joblib.load("models/digits.joblib")
accuracy = float((model.predict(rows[:, :-1] / 16.0) == rows[:, -1]).mean())
json.dump({"accuracy": accuracy}, open("report.json", "w"))
print(f"accuracy={accuracy:.4f}")
"""


def add_workflows(ws: Workspace, python: str, say: Progress) -> None:
    """A real sweep and a pipeline (fresh, then one stage made stale by a param change)."""
    say("sweep: alpha x epochs (4 runs)")
    ws.workflows.sweep(RunRequest((python, "train.py", "--alpha", "{alpha}", "--epochs", "{epochs}"),
                                  name="alpha-epochs"), ["alpha=0.0003,0.003", "epochs=8,12"])
    root = ws.root
    (root / "report.py").write_text(REPORT_PY, encoding="utf-8")
    (root / "params.yaml").write_text("alpha: 0.001\nepochs: 10\n", encoding="utf-8")
    pipeline = PIPELINE.replace("cmd: python ", f"cmd: {python} ")
    (root / "workbench.yaml").write_text(pipeline, encoding="utf-8")
    say("pipeline: repro (prepare -> train -> report)")
    result = ws.workflows.repro()
    if result.status != "succeeded":
        raise RuntimeError(f"the demo pipeline failed: {result.message}\n{result.log_tail}")
    (root / "params.yaml").write_text("alpha: 0.0005\nepochs: 10\n", encoding="utf-8")


def make_demo(dest: Path, *, deterministic: bool = False, progress: Progress | None = None,
              python: str | None = None, with_workflows: bool | None = None) -> Path:
    """Create the demo project in ``dest`` (which must be empty or absent). Returns its root.

    ``with_workflows`` (default: when not deterministic) adds a real 4-run sweep and a 3-stage
    pipeline, run and then made stale by a param change, so every screen has something to show.
    """
    if with_workflows is None:
        with_workflows = not deterministic
    say = progress or (lambda _text: None)
    dest = dest.resolve()
    from workbench.errors import UsageError

    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} is not a folder", "pass a new folder for the demo project")
    if dest.exists() and any(dest.iterdir()):
        raise UsageError(f"{dest} is not empty", "pass a new folder for the demo project")
    dest.mkdir(parents=True, exist_ok=True)
    python = python or sys.executable
    (dest / "prepare.py").write_text(PREPARE_PY, encoding="utf-8")
    (dest / "train.py").write_text(TRAIN_PY, encoding="utf-8")
    (dest / "README.md").write_text(README, encoding="utf-8")
    (dest / IGNORE_FILENAME).write_text("__pycache__/\n", encoding="utf-8")
    ws, _ = Workspace.init(dest)
    clock = FrozenClock(DEMO_EPOCH)
    if deterministic:
        ws.close()
        ws = Workspace(dest, clock=clock, run_ids=numbered_run_ids(), snapshot_salt=counting_salt())
    try:
        say("snapshot: initial code")
        ws.versions.snapshot("initial code", kind="manual")
        clock.step(60)
        say("run: prepare (exports data/digits.csv)")
        _execute(ws, [python, "prepare.py"], "prepare")
        for name, args in RUNS:
            clock.step(120)
            say(f"run: {name}")
            _execute(ws, [python, *args], name)
        clock.step(300)
        train = dest / "train.py"
        train.write_text(train.read_text(encoding="utf-8").replace(
            'default=15)', 'default=20)').replace("test_size=0.25", "test_size=0.2"), encoding="utf-8")
        (dest / "NOTES.md").write_text("Longer default training; smaller validation split.\n",
                                       encoding="utf-8")
        say("snapshot: longer default training")
        ws.versions.snapshot("longer default training", kind="manual")
        clock.step(60)
        with contextlib.suppress(Exception):
            ws.runs.set_alias("digits", 6, "production")
        if with_workflows:
            if deterministic:  # workflows keep the real clock and ids, as they always had
                ws.close()
                ws = Workspace(dest)
            add_workflows(ws, python, say)
    finally:
        ws.close()
    return dest


def time_of_demo() -> float:
    """A 'now' for deterministic screenshots: one hour after the demo's first event."""
    return DEMO_EPOCH + 3600.0

