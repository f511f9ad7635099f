"""Fold predictions into window buckets on a second core while ingest stores them.

Ingest (:mod:`workbench.monitor.ingest`) and the fold (:mod:`workbench.monitor.windows`) each take
a CPU's worth of Python per row. For a large spool backlog, :meth:`PredictionService.ingest` starts
this module as a child process (``python -m workbench.monitor.foldworker DB DEPLOYMENT...``) that
folds each committed block while the parent parses and inserts the next one; the parent closes the
child's stdin when it has stored everything, the child folds what is left and exits.

Nothing depends on the child for correctness: the fold is a resumable, exactly-once step (its cursor
moves in the same transaction as the buckets it wrote), and the parent folds whatever is still left
after the child is gone, however it ended.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

WORKER_BYTES = 32 << 20
"""Spool bytes waiting below which ingest folds inline (a child costs ~0.3 s of start-up)."""
IDLE_WAIT_S = 0.1


class FoldWorker:
    """The child process folding beside an ingest (``start`` it, ``finish`` it)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    @classmethod
    def start(cls, db_path: Path, deployments: list[str]) -> FoldWorker | None:
        """A running child, or None where one cannot be started (ingest then folds inline)."""
        if (os.cpu_count() or 1) < 2 or not deployments:
            return None
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "workbench.monitor.foldworker", str(db_path), *deployments],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        except OSError:
            return None
        return cls(process)

    def finish(self, timeout: float = 600.0) -> None:
        """Tell the child that everything is stored and wait for it to fold the rest."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise


def _run(db_path: Path, deployments: list[str]) -> int:
    from workbench.monitor.windows import fold
    from workbench.store.db import connect

    db = connect(db_path)
    stdin = sys.stdin
    while True:
        folded = sum(fold(db, name) for name in deployments)
        if folded:
            continue
        ready, _, _ = select.select([stdin], [], [], IDLE_WAIT_S)
        if ready and not os.read(stdin.fileno(), 4096):  # the parent stored everything: fold the tail, stop
            for name in deployments:
                fold(db, name)
            db.close()
            return 0


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m workbench.monitor.foldworker DB DEPLOYMENT...", file=sys.stderr)
        return 2
    return _run(Path(argv[0]), argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
