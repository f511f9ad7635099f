"""The deploy commands' bad-input paths: one line, exit status 2."""

from __future__ import annotations

from pathlib import Path

from workbench.core.workspace import Workspace


def test_bad_input_is_one_line(ws: Workspace, project_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    res = cli(project_dir, "deployments", "--json")
    assert res.code == 0 and res.out.strip() == "[]"
    res = cli(project_dir, "scale", "nope", "2")
    assert res.code == 2 and res.err.count("\n") == 1 and "no deployment named 'nope'" in res.err
    res = cli(project_dir, "rollback", "nope")
    assert res.code == 2 and "no deployment named 'nope'" in res.err
    (project_dir / "req.json").write_text("[[5.1, 3.5, 1.4, 0.2]]")
    res = cli(project_dir, "predict", "nope", "req.json")
    assert res.code == 2 and "Traceback" not in res.err
    res = cli(project_dir, "deploy", "nosuchmodel:1", "--name", "Bad_Name")
    assert res.code == 2 and res.err.startswith("error: ") and res.err.count("\n") == 1


def test_autoscaling_flags_are_checked_first(ws: Workspace, project_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    res = cli(project_dir, "deploy", "nosuchmodel:1", "--max-replicas", "3")
    assert res.code == 2 and "applies to cluster targets" in res.err and res.err.count("\n") == 1
    res = cli(project_dir, "deploy", "nosuchmodel:1", "--target", "kubernetes", "--min-replicas", "4",
              "--max-replicas", "2")
    assert res.code == 2 and "between 1 and --max-replicas (2)" in res.err
