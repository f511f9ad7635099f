"""``workbench.log_feedback``: the true label of a prediction, from any Python process.

Labels arrive outside any run (a labelling job, a nightly join), so this opens the project's
Workspace (cached per project) and writes through ``ws.predictions``; it lives at the facade, not in
the tracking API that scripts under ``workbench run`` use, because it needs the monitor service.
"""

from __future__ import annotations

import os
from typing import Any

_feedback_workspaces: dict[str, Any] = {}


def log_feedback(
    request_id: str, label: Any, *, deployment: str | None = None, row_index: int = 0,
    project: str | os.PathLike[str] | None = None,
) -> None:
    """Record the true label of a prediction a deployment made (by the request id its answer carried).

    Written straight to the project's store (labels arrive outside any run): the project found from
    ``project``, else ``WORKBENCH_PROJECT``, else the current folder. ``deployment`` is needed only
    when the request is not (yet) among the recorded predictions."""
    from pathlib import Path

    from workbench.core.workspace import Workspace

    start = project or os.environ.get("WORKBENCH_PROJECT")
    key = os.path.abspath(os.fspath(start or os.getcwd()))
    ws = _feedback_workspaces.get(key)
    if ws is None:
        ws = _feedback_workspaces[key] = Workspace.open(Path(key))
    ws.predictions.log_feedback(str(request_id), label, deployment=deployment, row_index=row_index)
