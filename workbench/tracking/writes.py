"""Is the file in the project still the one this run wrote? Checks for plain (non-isolated) runs.

The capture ``sitecustomize`` of a local Python job records, each time the job closes a project file
it opened for writing, the SHA-256 of the bytes it wrote (hashed as they were written, or read back
at close when the job seeked, appended or wrote behind Python's back) in ``writes.jsonl`` beside the
run's events (env ``WORKBENCH_WRITES``). When the run ends, :func:`check_writes` compares each such
file in the project with what the job closed (the last close per path wins):

* same bytes: the output is the run's own. A model file is first copied to a private file and
  checked there, and registered from that copy, so another process writing the path meanwhile can
  never slip its bytes into this run's model version;
* other bytes: another process overwrote it after this run wrote it. The output keeps no hash, is
  not registered as this run's model, and an ``overwritten`` conflict is recorded on the run.

Files written by other means (a C library's own ``fopen``, a non-Python child, ``os.open``) have no
close record: they are recorded from the snapshots as before, without this check.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.tracking import conflicts, model_formats
from workbench.tracking.conflicts import Conflict
from workbench.tracking.run_paths import relative_path

if TYPE_CHECKING:
    from workbench.versioning.versioned import VersionedProject

OVERWRITTEN = "overwritten by another process after this run wrote it"
WRITES_FILE = "writes.jsonl"


@dataclass
class WriteCheck:
    """What :func:`check_writes` found: outputs that are not the run's bytes (path -> reason), and
    private verified copies of model files (path -> copy) to register from."""

    foreign: dict[str, str] = field(default_factory=dict)
    private: dict[str, Path] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    folder: Path | None = None

    def cleanup(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def load_closes(path: Path, root: Path) -> dict[str, dict[str, Any]]:
    """The last close record per project-relative path in ``path`` (missing file: none)."""
    found: dict[str, dict[str, Any]] = {}
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            record = json.loads(line)
            rel = relative_path(str(record["path"]), root)
            sha, size = str(record["sha256"]), int(record["size"])
        except (ValueError, KeyError, TypeError):
            continue
        if rel is not None and not Path(rel).is_absolute():
            found[rel] = {"sha256": sha, "size": size}
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_writes(
    ws: VersionedProject, db: sqlite3.Connection, run_id: str, writes: Path, models: list[dict[str, Any]],
    after: str | None,
) -> WriteCheck:
    """Compare each file the run closed with the project's file now (``after``: the snapshot taken
    when the run ended); see the module docstring."""
    from workbench.tracking.finalize import snapshot_files

    check = WriteCheck()
    closes = load_closes(writes, ws.root)
    logged = {str(m.get("path")) for m in models}
    for rel, closed in sorted(closes.items()):
        full = ws.root / rel
        if full.is_symlink() or not full.is_file():
            continue  # removed since (by the run itself, often): nothing of ours to mistake
        if rel in logged or model_formats.sniff(full) is not None:
            if check.folder is None:
                check.folder = ws.paths.tmp / f"verify-{run_id}"
                check.folder.mkdir(parents=True, exist_ok=True)
            copy = check.folder / f"{len(check.private)}-{Path(rel).name}"  # the suffix tells the framework
            shutil.copyfile(full, copy)
            if sha256_of(copy) == closed["sha256"]:
                check.private[rel] = copy
                continue
        elif full.stat().st_size == closed["size"] and sha256_of(full) == closed["sha256"]:
            continue
        entry = snapshot_files(ws, after).get(rel) if after else None
        project_hash = getattr(entry, "hash", None) if entry is not None else None
        check.foreign[rel] = OVERWRITTEN
        other = conflicts.other_writer(db, run_id, rel, project_hash)
        check.conflicts.append(Conflict(rel, "overwritten", other, OVERWRITTEN, None, project_hash))
    conflicts.record(db, run_id, check.conflicts)
    return check
