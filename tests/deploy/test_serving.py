"""Building the local model server's venv: progress from pip's output, one-line errors when pip fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.core.workspace import Workspace
from workbench.deploy import serving


def test_pip_output_becomes_progress() -> None:
    calls: list[tuple[int, int]] = []
    counter = serving.PipProgress(10, lambda done, total: calls.append((done, total)))
    counter.report()
    counter.venv_created()
    for line in ("Collecting mlserver==1.7.1", "  Downloading mlserver-1.7.1.whl", "Collecting numpy"):
        counter.feed(line)
    counter.feed("Installing collected packages: numpy, uvloop, mlserver")
    counter.finished()
    assert calls == [(0, 12), (1, 12), (2, 12), (3, 12), (4, 5), (5, 5)]
    # More packages than the estimate: the total grows ahead of what is done.
    counter = serving.PipProgress(1, lambda done, total: calls.append((done, total)))
    calls.clear()
    for i in range(4):
        counter.feed(f"Collecting p{i}")
    assert all(done < total for done, total in calls)


def test_unreachable_index_is_one_line_and_leaves_nothing(
    ws: Workspace, project_dir: Path, cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    import joblib
    import sklearn
    from sklearn.dummy import DummyClassifier

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no serving venv built yet
    monkeypatch.delenv("WORKBENCH_SERVE_VENV", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # only the index below, no find-links
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on port 9
    monkeypatch.setenv("PIP_RETRIES", "1")
    joblib.dump(DummyClassifier().fit([[0.0]], [0]), project_dir / "model.joblib")
    ws.runs.register_model(project_dir / "model.joblib", name="iris")
    assert not ws.deployments.server_ready("iris:1")

    res = cli(project_dir, "deploy", "iris:1")

    assert res.code == 2 and res.err.count("\n") == 1, res.err
    assert res.err.startswith("error: cannot install the model server: pip could not reach ")
    assert "http://127.0.0.1:9/simple" in res.err and "Connection refused" in res.err
    assert "Traceback" not in res.err
    serve = tmp_path / "cache" / "workbench" / "serve"
    assert [p.name for p in serve.iterdir()] == []  # no half-built venv left behind
    assert not ws.deployments.server_ready("iris:1")
    assert sklearn.__version__ in str(ws.runs.model_version("iris:1").framework_version)


def test_pip_errors_in_one_line() -> None:
    reqs = ["mlserver==1.7.1", "uvloop<0.22"]
    err = serving.pip_error(
        [
            "Looking in indexes: https://pypi.example/simple",
            "ERROR: Could not find a version that satisfies the requirement mlserver==1.7.1"
            " (from versions: none)",
            "ERROR: No matching distribution found for mlserver==1.7.1",
        ],
        reqs,
        1,
    )
    assert err.message == (
        "cannot install the model server: https://pypi.example/simple offered no version of "
        "mlserver==1.7.1 (unreachable, or it does not have that package)"
    )
    err = serving.pip_error(["ERROR: Failed building wheel for uvloop"], reqs, 1)
    assert err.message.endswith(": ERROR: Failed building wheel for uvloop") and "\n" not in err.one_line()
