"""MLflow logging of a job whose only channel back is its log (a Kubernetes pod: events on stdout).

Such a job has no folder the host can read afterwards, so its capture ``sitecustomize`` points an
unset ``MLFLOW_TRACKING_URI`` at a file store in the pod's temporary folder (:func:`store_folder`)
and, when the process that did so exits, prints what the store holds as marked event lines
(:func:`event_lines`: ``param``, ``tag`` and packed ``series`` events, each within the wire
format's line bound), which the host ingests like any other event. The mapping is the host's
(:func:`workbench.tracking.capture_mlflow.flatten`). Artifacts stay in the pod: they are not sent.

Standard library only, and imported only at exit by a job whose store exists.
"""

from __future__ import annotations

import os
import sys
from array import array
from pathlib import Path

from workbench.tracking.capture_mlflow import flatten, read_store
from workbench.tracking.events import MARKER_BYTES, bounded_key, encode_bounded, series_lines


def store_folder(run_id: str) -> str:
    """Where a pod's MLflow writes for the run ``run_id``."""
    import tempfile

    safe = "".join(c for c in run_id if c.isalnum()) or "run"
    return os.path.join(tempfile.gettempdir(), f"workbench-mlflow-{safe}")


def event_lines(folder: Path) -> list[bytes]:
    """The store's params, tags and metric series as event lines (newline included, no marker)."""
    found = flatten(read_store("file", folder))
    lines = [encode_bounded({"e": "param", "k": bounded_key(key), "v": value})
             for key, value in found.params.items()]
    lines += [encode_bounded({"e": "tag", "k": bounded_key(key), "v": value})
              for key, value in found.tags.items()]
    for key, (steps, values, times) in found.series.items():
        lines += series_lines(key, array("q", steps), array("d", values), array("d", times))
    return lines


def send(folder: str) -> None:
    """Print the store's events on stdout behind the marker (at the job's exit)."""
    if not os.path.isdir(folder):
        return
    lines = event_lines(Path(folder))
    out = sys.__stdout__
    if out is None or not lines:
        return
    out.flush()
    out.buffer.write(b"".join(MARKER_BYTES + line for line in lines))
    out.buffer.flush()


__all__ = ["event_lines", "send", "store_folder"]
