"""``workbench run``'s flags become one RunRequest, and that value reaches the runner intact.

The TUI starts runs by writing ``workbench run`` arguments back from a request (``run_argv``), so
the two directions are checked against each other through the real parser.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from workbench.cli import build_parser
from workbench.cli.run_request import request_from_args, run_argv
from workbench.core.workspace import Workspace
from workbench.errors import UsageError
from workbench.tracking import runner
from workbench.tracking.request import RunRequest

EVERY_FLAG = ["--name", "fit", "--tag", "team=cv", "--tag", "quick", "--executor", "docker",
              "--image", "img:1", "--gpus", "2", "--cpu", "1.5", "--memory", "1Gi", "--namespace", "ns",
              "--isolated", "--", "python", "train.py", "--lr", "0.1"]


def _parsed(*argv: str) -> RunRequest:
    return request_from_args(build_parser().parse_args(["run", *argv]))


def test_every_flag_lands_in_its_field() -> None:
    assert _parsed(*EVERY_FLAG) == RunRequest(
        ("python", "train.py", "--lr", "0.1"), name="fit", tags=("team=cv", "quick"), executor="docker",
        image="img:1", gpus=2, cpu="1.5", memory="1Gi", namespace="ns", isolated=True)
    plain = _parsed("--", "python", "t.py")
    assert plain == RunRequest(("python", "t.py")) and plain.executor is None  # the project's default


def test_run_argv_gives_back_the_same_request() -> None:
    request = _parsed(*EVERY_FLAG)
    assert _parsed(*run_argv(request)) == request
    gpus_all = RunRequest(("python", "-c", "pass"), gpus="all", tags=("a=b=c",))
    assert _parsed(*run_argv(gpus_all)) == gpus_all


def test_fields_the_command_line_cannot_carry_are_refused() -> None:
    with pytest.raises(UsageError, match="sweep_id, params"):
        run_argv(RunRequest(("python",), sweep_id="s1", params={"lr": 1}))
    with pytest.raises(UsageError, match="no command to run"):
        _parsed("--name", "x")


def test_the_request_from_the_command_line_reaches_the_runner_intact(
    ws: Workspace, project_dir: Path, cli: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[RunRequest] = []
    real = runner.execute

    def spy(ws_: Any, request: RunRequest, **kw: Any) -> str:
        seen.append(request)
        return real(ws_, request, **kw)

    monkeypatch.setattr(runner, "execute", spy)
    argv = ["--name", "spied", "--tag", "k=v", "--isolated", "--", sys.executable, "-c", "print('loss: 0.5')"]
    result = cli(project_dir, "run", "-q", *argv)
    assert result.code == 0, result.err
    # The runner resolves the project's default executor itself, nothing else changes on the way.
    assert seen == [_parsed(*argv)]
    run = ws.runs.get("latest")
    assert (run.name, run.tags, run.executor) == ("spied", {"k": "v"}, "local")
