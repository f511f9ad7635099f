"""TensorBoard log folders as runs: which folders are runs, read with live capture's event-file reader.

Each folder that directly holds ``events.out.tfevents.*`` files is a run, except that a folder inside
a run's folder (``SummaryWriter.add_scalars`` writes one per line, ``add_hparams`` one per call) is
part of that run: its series are named ``SUBFOLDER/TAG``. The files are read by
:mod:`workbench.tracking.capture_tb` (the reader live capture uses): a scalar is a ``simple_value``
(TF1, torch, tensorboardX) or a one-number tensor of the scalars plugin (TF2 ``tf.summary.scalar``);
hyperparameters written by ``add_hparams`` (the hparams plugin's session start) become params. A
record cut short (a writer still running) ends that file, and so does a record whose length fails
its CRC. Measured against tbparse and tensorboard's own reader in docs/performance.md: this needs
neither TensorFlow, tensorboard nor pandas, and reads several times faster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from workbench.importers.model import ImportSourceError, Series, Source, SourceRun
from workbench.tracking.capture_tb import EventFileError, read_scalars

EVENTS = "events.out.tfevents."


def read_events(path: Path, prefix: str, series: dict[str, Series], params: dict[str, object]) -> None:
    """Add one event file's scalars to ``series`` (keys ``prefix + tag``) and hparams to ``params``.

    The file is read by live capture's reader (:func:`workbench.tracking.capture_tb.read_scalars`);
    a corrupt record ends the file, what came before it counts."""
    try:
        for tag, step, wall, value in read_scalars(path, params):
            key = prefix + tag
            target = series.get(key)
            if target is None:
                target = series[key] = Series()
            target.add(step, wall, value)
    except (EventFileError, OSError):
        pass  # a damaged or unreadable file: what it held up to there is kept


def _event_dirs(root: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (Path(folder) / d).is_symlink())
        if any(name.startswith(EVENTS) for name in files):
            found.append(Path(folder))
    return sorted(found)


def _is_time(name: str) -> bool:
    """A folder named by ``time.time()``: where torch's ``add_hparams`` writes (its keys stand alone)."""
    try:
        return float(name) > 1e9
    except ValueError:
        return False


def _load(run_dir: Path, members: list[Path], params: dict[str, object]) -> dict[str, Series]:
    series: dict[str, Series] = {}
    for folder in members:
        rel = folder.relative_to(run_dir).as_posix()
        prefix = "" if rel == "." or _is_time(folder.name) else rel + "/"
        for path in sorted(folder.iterdir()):
            if path.name.startswith(EVENTS) and path.is_file() and not path.is_symlink():
                read_events(path, prefix, series, params)
    return series


def open_logdir(root: Path) -> Source:
    if not root.is_dir():
        raise ImportSourceError(f"no such folder: {root}", "give a TensorBoard log folder")
    folders = _event_dirs(root)
    if not folders:
        raise ImportSourceError(f"no TensorBoard event files (events.out.tfevents.*) under {root}",
                                "give the folder SummaryWriter wrote to (its log_dir)")
    runs: dict[Path, list[Path]] = {}
    for folder in folders:
        owner = next((r for r in runs if folder.is_relative_to(r)), folder)
        runs.setdefault(owner, []).append(folder)
    resolved = root.resolve()

    def each() -> Iterator[SourceRun]:
        for run_dir, members in runs.items():
            rel = run_dir.relative_to(root).as_posix()
            name = root.resolve().name if rel == "." else rel
            params: dict[str, object] = {}
            series = _load(run_dir, members, params)  # hparams are params: read before the run is written
            times = [t for s in series.values() for t in s.times[:1]]
            ends = [t for s in series.values() for t in s.times[-1:]]
            mtime = min((p.stat().st_mtime for m in members for p in m.glob(EVENTS + "*")), default=0.0)
            yield SourceRun(
                kind="tensorboard", source_id=f"{resolved}/{rel}", name=name, status="succeeded",
                started_at=min(times, default=mtime), ended_at=max(ends, default=None),
                params=params, tags={"logdir": str(resolved)}, load_metrics=partial(dict, series),
            )

    return Source("tensorboard", str(root), len(runs), each)
