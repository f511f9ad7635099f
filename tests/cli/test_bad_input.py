"""The house rule for bad input, checked on the real ``workbench`` binary for every subcommand.

Bad input gets ONE line on stderr that says what was wrong (and what to do), a non-zero exit status
(2 for usage and user errors), no traceback, and nothing half-printed on stdout (with ``--json``:
nothing, or a valid JSON document). Nothing already recorded is lost or corrupted.

Three situations per command, taken from :data:`workbench.cli.COMMAND_TO_MODULE` so that a new
command is exercised as soon as it is registered:

- outside any project;
- inside a project, naming an id or name that does not exist (snapshot, run, model, deployment,
  stage, sweep);
- with an invalid option value.

A command that legitimately succeeds in a situation (``init`` outside a project, ``gpus``,
``watch --status``) is asserted to succeed instead. Then two broken stores: garbage bytes in
``.workbench/workbench.db`` and a blob cache that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import run_workbench
from workbench.cli import COMMAND_TO_MODULE, build_parser

COMMANDS = sorted(COMMAND_TO_MODULE)

# Subprocesses must not reach a real cluster or the user's kubeconfig.
ENV = {"KUBECONFIG": "/nonexistent/kubeconfig", "KUBERNETES_SERVICE_HOST": ""}


@dataclass(frozen=True)
class Case:
    """One command line and what it must do."""

    argv: tuple[str, ...]
    ok: bool = False
    """True: a legitimate success (exit 0, no stderr required to be empty)."""
    code: int = 2
    xfail: str | None = None
    json_out: bool = field(default=False)

    @property
    def id(self) -> str:
        return " ".join(self.argv)


def case(*argv: str, ok: bool = False, code: int = 2, xfail: str | None = None) -> Case:
    return Case(tuple(argv), ok=ok, code=code, xfail=xfail)



# -- situation 1: outside any project --------------------------------------------------------------
# Default: the bare command. Commands with required positionals get syntactically valid ones, so
# that the error is about the missing project, not about usage.
OUTSIDE: dict[str, list[Case]] = {
    "init": [case("init", "--json", ok=True)],
    "gpus": [case("gpus", "--json", ok=True)],
    "diff": [case("diff", "latest")],
    "restore": [case("restore", "latest")],
    "cat": [case("cat", "latest", "notes.txt")],
    "run": [case("run", "--", "python", "-c", "pass")],
    "show": [case("show", "latest")],
    "metrics": [case("metrics", "latest")],
    "logs": [case("logs", "latest")],
    "compare": [case("compare", "a", "b")],
    "lineage": [case("lineage", "latest")],
    "rerun": [case("rerun", "latest")],
    "cluster": [case("cluster", "--json")],  # no kubeconfig here: one line, not a Python error
    "watch": [case("watch"), case("watch", "--status", "--json")],
    "deploy": [case("deploy", "model")],
    "scale": [case("scale", "web", "2")],
    "rollback": [case("rollback", "web")],
    "undeploy": [case("undeploy", "web")],
    "predict": [case("predict", "web", "{input}")],
    "sweep": [case("sweep", "--param", "a=1,2", "--", "python", "-c", "pass")],
    "models": [case("models"), case("models", "show", "m")],
    "import": [case("import", "mlflow", "{file}")],
    # demo makes its own project (it trains real models, a minute): its bad input is below.
    "demo": [],
}

# -- situation 2: a fresh project, an id or name that does not exist --------------------------------
UNKNOWN: dict[str, list[Case]] = {
    "diff": [case("diff", "0badc0de"), case("diff", "latest", "0badc0de", "--json")],
    "restore": [case("restore", "0badc0de"), case("restore", "latest", "no/such/file")],
    "cat": [case("cat", "0badc0de", "notes.txt"), case("cat", "latest", "no-such-file.txt")],
    "log": [],
    "show": [case("show", "no-such-run"), case("show", "no-such-run", "--json")],
    "metrics": [case("metrics", "no-such-run"), case("metrics", "latest", "no/such/key"),
                case("metrics", "latest", "no/such/key", "--plot")],
    "logs": [case("logs", "no-such-run")],
    "compare": [case("compare", "latest", "no-such-run")],
    "lineage": [case("lineage", "no-such-run"), case("lineage", "--deployment", "no-such-deployment")],
    "rerun": [case("rerun", "no-such-run")],
    "models": [case("models", "show", "no-such-model"),
               case("models", "tag", "no-such-model:1", "prod"), case("models", "tag", "iris:9", "prod")],
    "deploy": [case("deploy", "no-such-model"), case("deploy", "no-such-model:3", "--json")],
    "deployments": [case("deployments", "no-such-deployment")],
    "scale": [case("scale", "no-such-deployment", "2")],
    "rollback": [case("rollback", "no-such-deployment")],
    "undeploy": [case("undeploy", "no-such-deployment")],
    "predict": [case("predict", "no-such-deployment", "{input}")],
    "predictions": [case("predictions", "no-such-deployment"),
                    case("predictions", "no-such-deployment", "--json")],
    "feedback": [case("feedback", "no-such-deployment", "{input}")],
    "retrain": [case("retrain", "no-such-deployment"), case("retrain", "no-such-deployment", "--compare")],
    "monitor": [case("monitor", "no-such-deployment"), case("monitor", "no-such-deployment", "--json"),
                case("monitor", "baseline", "no-such-model:1", "{input}")],
    "repro": [case("repro", "no-such-stage"), case("repro", "--dry", "no-such-stage")],
    "sweeps": [case("sweeps", "no-such-sweep"), case("sweeps", "no-such-sweep", "--json")],
    "run": [case("run", "--", "no-such-program-xyz")],
    "init": [case("init", "no/such/folder")],
    "push": [case("push", "no-such-remote")],
    "pull": [case("pull", "no-such-remote")],
    "clone": [case("clone", "file:///no/such/remote/folder", "clone-dest")],
    "import": [case("import", "mlflow", "no-such-store"), case("import", "mlflow", "{file}", "--json"),
               case("import", "mlflow", "sqlite:///no/such.db"), case("import", "tensorboard", "{file}"),
               case("import", "wandb", "{file}"), case("import", "dvc", "{file}")],
}
# Commands with a positional argument that names nothing stored (checked below, so that a new
# command with an id argument has to be put in UNKNOWN or here, with the reason).
NO_ID = {
    "init": "a folder (covered in UNKNOWN with a missing folder)",
    "run": "a command line",
    "sweep": "a command line",
    "demo": "a destination folder",
    "log": "no positional",
}

# -- situation 3: an invalid option value (inside the project) --------------------------------------
INVALID: dict[str, list[Case]] = {
    "init": [case("init", "{file}")],
    "snapshot": [case("snapshot", "--kind", "bogus")],
    "log": [case("log", "-n", "many"), case("log", "-n", "-1")],
    "diff": [case("diff", "a", "b", "c", "d")],
    "restore": [case("restore", "latest", "../outside.txt"), case("restore", "latest", "/etc/passwd")],
    "cat": [case("cat", "latest", "../outside.txt")],
    "watch": [case("watch", "--quiet", "soon"), case("watch", "--quiet", "-1"),
              case("watch", "--max-interval", "0")],
    "prune-auto": [case("prune-auto", "--rule", "forever:maybe"),
                   case("prune-auto", "--rule", "1d:1h,1h:all", "--json")],
    "run": [case("run", "--executor", "mainframe", "--", "python", "-c", "pass"),
            case("run", "--gpus", "lots", "--", "python", "-c", "pass"),
            case("run", "--memory", "lots", "--", "python", "-c", "pass"),
            # A tag without '=' is a label (KEY[=VALUE]), as W&B tags are: accepted.
            case("run", "--tag", "no-equals-sign", "--", "python", "-c", "pass", ok=True),
            case("run")],
    "runs": [case("runs", "--filter", "((("), case("runs", "--sort", ":desc"),
             case("runs", "--limit", "-3"), case("runs", "--limit", "x")],
    "metrics": [case("metrics", "latest", "--max-points", "0")],
    "logs": [case("logs", "latest", "--json", "--follow", "extra")],
    "models": [case("models", "tag", "iris:not-a-number", "prod"), case("models", "frobnicate")],
    "gpus": [case("gpus", "--json", ok=True), case("gpus", "--cluster", "--json")],
    "cluster": [case("cluster")],
    # "iris" is a real model (the fixture's run wrote iris.joblib): the options must be refused
    # before anything is resolved, built or started.
    "deploy": [case("deploy", "iris", "--replicas", "-1"), case("deploy", "iris", "--target", "moon"),
               case("deploy", "iris", "--timeout", "soon"), case("deploy", "iris", "--timeout", "-5"),
               case("deploy", "iris", "--name", "Bad_Name!"), case("deploy", "iris", "--gpus", "-2"),
               case("deploy", "iris", "--log-predictions", "2"),
               case("deploy", "iris", "--log-predictions", "x"),
               case("deploy", "iris", "--build-image"),
               case("deploy", "iris", "--target", "local", "--registry", "reg.example.com/ml")],
    "deployments": [case("deployments", "--all", "--bogus")],
    "scale": [case("scale", "web", "-3"), case("scale", "web", "many")],
    "rollback": [case("rollback", "web", "--to", "first")],
    "predict": [case("predict", "web", "{garbage}"), case("predict", "web", "{missing}")],
    "predictions": [case("predictions", "web", "--limit", "-1"),
                    case("predictions", "web", "--filter", "((("),
                    case("predictions", "web", "--since", "soon"),
                    case("predictions", "web", "--limit", "x")],
    "feedback": [case("feedback", "web", "{missing}"), case("feedback", "web", "{garbage}")],
    "retrain": [case("retrain", "web", "--since", "soon", "--compare")],
    "repro": [case("repro", "-j", "0"), case("repro", "-j", "-2"), case("repro", "--jobs", "all")],
    "dag": [case("dag", "--bogus")],
    "sweep": [case("sweep", "--param", "lr", "--", "python", "-c", "pass"),
              case("sweep", "--param", "lr=1,2"),
              case("sweep", "--param", "lr=1,2", "--parallel", "0", "--", "python", "-c", "pass", "{lr}"),
              case("sweep", "--param", "lr=1,2", "--random", "-1", "--", "python", "-c", "pass", "{lr}"),
              case("sweep", "--param", "lr=1,2", "--gpus", "lots", "--", "python", "-c", "pass", "{lr}"),
              case("sweep", "--param", "lr=1,2", "--executor", "mainframe", "--", "python", "-c", "pass",
                   "{lr}"),
              case("sweep", "--param", "lr=9:1", "--dry", "--", "python", "{lr}")],
    "sweeps": [case("sweeps", "--limit", "x"), case("sweeps", "--value", "median"),
               case("sweeps", "--limit", "-1")],
    "ui": [case("ui", "--screen", "nowhere")],
    "demo": [case("demo", "--screen", "nowhere"), case("demo", "{file}", "--no-open")],
    "status": [case("status", "--bogus")],
    "fsck": [case("fsck", "--bogus")],
    "gc": [case("gc", "extra")],
    "compare": [case("compare", "latest")],
    "lineage": [case("lineage", "latest", "--depth", "x")],
    "show": [case("show")],
    "rerun": [case("rerun", "latest", "--executor", "x")],
    "undeploy": [case("undeploy")],
}

# Legitimate successes inside the project.
INSIDE_OK: list[Case] = [
    case("watch", "--status", "--json", ok=True),
    case("gpus", ok=True),
    case("dag", "--json", ok=True),
    case("deployments", "--json", ok=True),
    case("sweeps", "--json", ok=True),
]

PIPELINE = """\
stages:
  copy:
    cmd: python -c "open('out.txt','w').write(open('notes.txt').read())"
    inputs: [notes.txt]
    outputs: [out.txt]
"""


def _cases(table: dict[str, list[Case]], default: tuple[str, ...] | None) -> list[pytest.param]:
    params = []
    for command in COMMANDS:
        cases = table.get(command)
        if cases is None:
            cases = [Case((command, *default))] if default is not None else []
        for c in cases:
            marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
            params.append(pytest.param(c, id=c.id, marks=marks))
    return params


def _fill(argv: tuple[str, ...], root: Path) -> list[str]:
    """Replace placeholders: {file} an existing regular file, {input} a valid request, ..."""
    out = []
    for token in argv:
        if token == "{file}":
            token = str(root / "notes.txt")
        elif token == "{input}":
            token = str(root / "request.json")
        elif token == "{garbage}":
            token = str(root / "garbage.json")
        elif token == "{missing}":
            token = str(root / "no-such-request.json")
        out.append(token)
    return out


def check(result: object, c: Case) -> None:
    """The house rule, or a legitimate success."""
    code = result.returncode  # type: ignore[attr-defined]
    out: str = result.stdout  # type: ignore[attr-defined]
    err: str = result.stderr  # type: ignore[attr-defined]
    shown = f"exit {code}\nstdout: {out[:2000]!r}\nstderr: {err[:2000]!r}"
    assert "Traceback" not in out + err, shown
    if c.ok:
        assert code == 0, shown
        if "--json" in c.argv:
            json.loads(out)
        return
    assert code == c.code, shown
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"stderr must be exactly one non-empty line\n{shown}"
    if out:
        assert "--json" in c.argv, f"nothing on stdout for an error\n{shown}"
        json.loads(out)


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """An empty folder with no project around it, a request file and a plain file in it."""
    root = tmp_path / "outside"
    root.mkdir()
    (root / "request.json").write_text('{"inputs": []}')
    (root / "notes.txt").write_text("x\n")
    return root


def _recorded(root: Path) -> dict[str, object]:
    """What the project holds, read straight from the database."""
    db = sqlite3.connect(root / ".workbench" / "workbench.db")
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                           "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        db.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project with one snapshot, one run and a one-stage pipeline; checked intact at the end."""
    root = tmp_path_factory.mktemp("bad-input") / "proj"
    root.mkdir()
    assert run_workbench(root, "init").returncode == 0
    (root / "notes.txt").write_text("hello\n")
    (root / "request.json").write_text('{"inputs": []}')
    (root / "garbage.json").write_text("{not json")
    (root / "workbench.yaml").write_text(PIPELINE)
    (root.parent / "outside.txt").write_text("must never be touched\n")
    train = ("import workbench; print('loss: 0.5'); open('iris.joblib', 'wb').write(b'not really a model');"
             " workbench.log_model('iris.joblib')")  # declared: a model whatever its bytes
    result = run_workbench(root, "run", "-q", "--", sys.executable, "-c", train, env=ENV)
    assert result.returncode == 0, result.stderr
    result = run_workbench(root, "snapshot", "-m", "baseline", "--json")
    assert result.returncode == 0, result.stderr
    before = _recorded(root)
    log_before = json.loads(run_workbench(root, "log", "--json").stdout)
    yield root
    # Nothing recorded was lost or corrupted by all the bad input.
    after = _recorded(root)
    assert {t: n for t, n in after.items() if n < before.get(t, 0)} == {}
    log_after = json.loads(run_workbench(root, "log", "--json").stdout)
    assert [s["id"] for s in log_before] == [s["id"] for s in log_after[-len(log_before):]]
    fsck = run_workbench(root, "fsck", "--json")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert (root / "notes.txt").read_text() == "hello\n"
    assert (root.parent / "outside.txt").read_text() == "must never be touched\n"


# -- the three situations -------------------------------------------------------------------------
@pytest.mark.parametrize("c", _cases(OUTSIDE, default=()))
def test_outside_a_project(c: Case, outside: Path) -> None:
    check(run_workbench(outside, *_fill(c.argv, outside), env=ENV, timeout=60), c)


@pytest.mark.parametrize("c", _cases(UNKNOWN, default=None))
def test_unknown_id_or_name(c: Case, project: Path) -> None:
    check(run_workbench(project, *_fill(c.argv, project), env=ENV, timeout=60), c)


@pytest.mark.parametrize("c", _cases(INVALID, default=("--no-such-option",)))
def test_invalid_option_value(c: Case, project: Path) -> None:
    check(run_workbench(project, *_fill(c.argv, project), env=ENV, timeout=60), c)


@pytest.mark.parametrize("c", [pytest.param(c, id=c.id) for c in INSIDE_OK])
def test_legitimate_success_inside(c: Case, project: Path) -> None:
    check(run_workbench(project, *c.argv, env=ENV, timeout=60), c)


def test_every_command_with_an_id_is_covered() -> None:
    """A new command taking a positional argument must say how a wrong one is handled."""
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subs.choices) == set(COMMAND_TO_MODULE)
    missing = []
    for name, sub in subs.choices.items():
        positional = [a for a in sub._actions if not a.option_strings
                      and not isinstance(a, argparse._SubParsersAction | argparse._HelpAction)]
        if positional and name not in UNKNOWN and name not in NO_ID:
            missing.append(name)
    assert not missing, f"add these to UNKNOWN (or NO_ID with a reason): {missing}"
    assert set(OUTSIDE) <= set(COMMANDS) and set(INVALID) <= set(COMMANDS) and set(UNKNOWN) <= set(COMMANDS)


# -- broken stores ---------------------------------------------------------------------------------
def _fresh(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    assert run_workbench(root, "init").returncode == 0
    (root / "notes.txt").write_text("hello\n")
    assert run_workbench(root, "snapshot").returncode == 0
    return root


@pytest.mark.parametrize("argv", [("status",), ("log", "--json"), ("snapshot",), ("runs",),
                                  ("deployments",), ("sweeps",), ("dag",), ("watch", "--status")])
def test_corrupt_database_is_one_line(tmp_path: Path, argv: tuple[str, ...]) -> None:
    root = _fresh(tmp_path)
    db = root / ".workbench" / "workbench.db"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    db.write_bytes(os.urandom(8192))
    result = run_workbench(root, *argv, env=ENV)
    check(result, Case(argv))
    assert "database" in result.stderr.lower()


def test_truncated_database_is_one_line(tmp_path: Path) -> None:
    root = _fresh(tmp_path)
    db = root / ".workbench" / "workbench.db"
    db.write_bytes(db.read_bytes()[:1000])
    for argv in (("log",), ("status",)):
        check(run_workbench(root, *argv, env=ENV), Case(argv))


def test_unreadable_blob_cache_is_one_line(tmp_path: Path) -> None:
    """The cache folder replaced by a file (the cache dir unreadable, whoever runs the tests)."""
    root = _fresh(tmp_path)
    cache = root / ".workbench" / "cache"
    shutil.rmtree(cache)
    cache.write_bytes(b"not a folder")
    (root / "notes.txt").write_text("changed\n")
    for argv in (("snapshot",), ("cat", "latest", "notes.txt"), ("restore", "latest", "--force"),
                 ("fsck",), ("gc",)):
        result = run_workbench(root, *argv, env=ENV)
        check(result, Case(argv))
        assert "blob cache" in result.stderr, result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its mode")
def test_permission_denied_blob_cache_is_one_line(tmp_path: Path) -> None:
    root = _fresh(tmp_path)
    cache = root / ".workbench" / "cache"
    (root / "notes.txt").write_text("changed\n")
    cache.chmod(0)
    try:
        for argv in (("snapshot",), ("cat", "latest", "notes.txt")):
            check(run_workbench(root, *argv, env=ENV), Case(argv))
    finally:
        cache.chmod(0o755)


def test_corrupt_blob_is_one_line(tmp_path: Path) -> None:
    root = _fresh(tmp_path)
    blobs = [p for p in (root / ".workbench" / "cache").rglob("*") if p.is_file()]
    assert blobs
    for blob in blobs:
        blob.chmod(0o644)
        blob.write_bytes(b"garbage" * 10)
    check(run_workbench(root, "cat", "latest", "notes.txt", env=ENV), Case(("cat",)))
    (root / "notes.txt").unlink()
    check(run_workbench(root, "restore", "latest", env=ENV), Case(("restore",)))


PARAM_PIPELINE = "stages:\n  a:\n    cmd: echo {k}\n    params:\n      k: {ref: k}\n"


def alias_bomb(levels: int = 9) -> str:
    """"Billion laughs": each level lists the previous one nine times (9**9 values once expanded)."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\nk: 1\n"


BROKEN_CONFIG = {
    "config-not-utf8": b"[watch]\nquiet_seconds = 1 # \xff\xfe\n",
    "config-bad-regex": b"[tracking]\nmetric_patterns = ['(?P<name>\\\\w+)=(?P<value>[']\n",
    "config-negative": b"[watch]\nquiet_seconds = -1.0\n",
    "config-absurd": b"[store]\nchunk_threshold = 1\n",
}
"""Config files that load as TOML but are wrong; each must be named with its key."""
CONFIG_KEY = {"config-not-utf8": "config.toml", "config-bad-regex": "tracking.metric_patterns[0]",
              "config-negative": "watch.quiet_seconds", "config-absurd": "store.chunk_threshold"}


@pytest.mark.parametrize("broken, argv", [
    ("pipeline-folder", ("dag",)), ("pipeline-folder", ("repro",)),
    ("pipeline-not-utf8", ("repro", "--dry")), ("pipeline-bad-yaml", ("dag", "--json")),
    ("params-not-utf8", ("repro",)), ("params-folder", ("repro", "--dry")),
    ("config-garbage", ("snapshot",)), ("config-garbage", ("watch", "--poll")),
    ("params-recursive", ("repro", "--dry")), ("params-recursive", ("repro",)),
    ("params-bomb", ("repro", "--dry")), ("params-bomb", ("repro",)), ("pipeline-bomb", ("dag", "--json")),
    ("pipeline-recursive", ("repro",)), ("pipeline-deep", ("dag",)),
    *[(name, argv) for name in BROKEN_CONFIG
      for argv in (("snapshot",), ("run", "--", "python", "-c", "pass"), ("watch", "--poll"))],
])
def test_broken_project_file_is_one_line(tmp_path: Path, broken: str, argv: tuple[str, ...]) -> None:
    """A project file that cannot be read or parsed: one line naming it, exit 2."""
    root = _fresh(tmp_path)
    if broken == "pipeline-folder":
        (root / "workbench.yaml").mkdir()
    elif broken == "pipeline-not-utf8":
        (root / "workbench.yaml").write_bytes(b"\xff\xfestages: {}\n")
    elif broken == "pipeline-bad-yaml":
        (root / "workbench.yaml").write_text("stages: [\n")
    elif broken == "pipeline-bomb":
        (root / "workbench.yaml").write_text(alias_bomb() + PARAM_PIPELINE)
    elif broken == "pipeline-recursive":
        (root / "workbench.yaml").write_text(PARAM_PIPELINE.replace("echo {k}", "&c [echo, *c]"))
    elif broken == "pipeline-deep":
        (root / "workbench.yaml").write_text(PARAM_PIPELINE + "x: " + "[" * 5000 + "]" * 5000 + "\n")
    elif broken.startswith("params"):
        (root / "workbench.yaml").write_text(PARAM_PIPELINE)
        if broken == "params-folder":
            (root / "params.yaml").mkdir()
        elif broken == "params-recursive":
            (root / "params.yaml").write_text("k: &k [1, *k]\n")
        elif broken == "params-bomb":
            (root / "params.yaml").write_text(alias_bomb())
        else:
            (root / "params.yaml").write_bytes(b"\xff\xfek: 1\n")
    elif broken in BROKEN_CONFIG:
        (root / ".workbench" / "config.toml").write_bytes(BROKEN_CONFIG[broken])
    else:
        (root / ".workbench" / "config.toml").write_text("garbage = = =\n")
    result = run_workbench(root, *argv, env=ENV, timeout=30)
    check(result, Case(argv))
    name = "config.toml" if broken.startswith("config") else (
        "params.yaml" if broken.startswith("params") else "workbench.yaml")
    assert name in result.stderr
    assert CONFIG_KEY.get(broken, name) in result.stderr
