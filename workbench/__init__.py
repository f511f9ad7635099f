"""Workbench: versioning, run tracking, launch and deploy for machine learning, in the terminal.

``import workbench`` is the tracking API used inside training scripts, so it must stay cheap: the
functions below are resolved lazily from :mod:`workbench.tracking.api` on first use, and nothing
here imports Textual, docker or kubernetes.

    import workbench
    workbench.log_param("lr", 0.1)
    workbench.log_metric("loss", 0.25, step=3)
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # not imported at run time: `workbench --version` and `import workbench` stay cheap
    from typing import Any

__version__ = "0.1.0"

TRACKING_API = (
    "log_param",
    "log_params",
    "log_metric",
    "log_metrics",
    "log",
    "input",
    "output",
    "log_model",
    "log_feedback",
    "set_tag",
    "active_run",
    "init",
    "finish",
)

__all__ = ["__version__", *TRACKING_API]


def __getattr__(name: str) -> Any:
    if name in TRACKING_API:
        if name == "log_feedback":  # labels go to the monitor service, through the Workspace
            from workbench.core import feedback as api
        else:
            from workbench.tracking import api  # type: ignore[no-redef]

        value = getattr(api, name)
        # Bound once: later ``workbench.log_metric`` lookups are plain module-dict hits, not a call
        # of this function (which cost more than log_metric itself in a training loop).
        globals()[name] = value
        return value
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
