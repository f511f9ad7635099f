"""The detached follower of a re-attached remote run: ``python -m workbench.core.follow ROOT RUN``.

:func:`workbench.tracking.reattach.spawn_follower` starts it when a Docker or Kubernetes job outlives
the workbench process that launched it. It opens the whole Workspace (so that a job that pushed its
outputs to the project's remote can have them fetched) and hands tracking's :func:`follow` the
project and the executors.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from workbench.core.workspace import Workspace
    from workbench.tracking.reattach import follow

    ws = Workspace.open(Path(argv[0]))
    try:
        return follow(ws.versioned, ws.executors, argv[1])
    finally:
        ws.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
