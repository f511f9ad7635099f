"""Secret-looking flag values, ``KEY=value`` words and params are stored as ``***``: checked on real
``workbench run`` subprocesses and the raw database; the command itself still gets the real value."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace
from workbench.tracking.redact import MASK, redact_command, redact_param, redacted_names, secret_name

CHECK = """
import os, sys
import workbench
argv = sys.argv[1:]
ok = ("--password=hunter2" in argv and argv[argv.index("--token") + 1] == "tok-42"
      and os.environ.get("AWS_SECRET_ACCESS_KEY") == "aws-s3cr3t" and "db.password=pg-pw" in argv)
workbench.log_param("api_token", "api-tok-7")
workbench.log_params({"hf_token": "hf-tok-8", "tokenizer": "bert-base", "max_tokens": 512})
print("real values seen" if ok else "WRONG VALUES")
sys.exit(0 if ok else 3)
"""
SECRETS = ("hunter2", "tok-42", "aws-s3cr3t", "pg-pw", "api-tok-7", "hf-tok-8")


@pytest.mark.parametrize("name", [
    "password", "db_password", "DB-PASSWD", "AWS_SECRET_ACCESS_KEY", "client.secret", "hf-token",
    "GITHUB_TOKEN", "apiToken", "api-key", "api_key", "apikey", "accessKey", "private_key",
    "credentials", "auth", "basic-auth", "authToken",
])
def test_secret_names(name: str) -> None:
    assert secret_name(name)


@pytest.mark.parametrize("name", ["lr", "tokenizer", "max_tokens", "num-tokens", "author", "authority",
                                  "keyword", "no-auth", "no-password", "epochs"])
def test_ordinary_names(name: str) -> None:
    assert not secret_name(name)


@pytest.mark.parametrize("argv,stored", [
    (["python", "t.py", "--password=x", "--lr", "0.1"], ["python", "t.py", "--password=***", "--lr", "0.1"]),
    (["python", "t.py", "--api-key", "k", "--verbose"], ["python", "t.py", "--api-key", "***", "--verbose"]),
    (["python", "t.py", "--use-auth-token", "--lr", "1"],
     ["python", "t.py", "--use-auth-token", "--lr", "1"]),
    (["python", "t.py", "-p", "short"], ["python", "t.py", "-p", "short"]),
    (["python", "t.py", "-password", "x"], ["python", "t.py", "-password", "***"]),
    (["env", "AWS_SECRET_ACCESS_KEY=s", "A=1", "python", "t.py"],
     ["env", "AWS_SECRET_ACCESS_KEY=***", "A=1", "python", "t.py"]),
    (["python", "t.py", "db.password=x", "+trainer.api_key=y", "model=resnet"],
     ["python", "t.py", "db.password=***", "+trainer.api_key=***", "model=resnet"]),
    (["sh", "-c", "HF_TOKEN=abc python t.py --token 'a b' --secret=z; echo --lr 3"],
     ["sh", "-c", "HF_TOKEN=*** python t.py --token *** --secret=***; echo --lr 3"]),
    (["sh", "-c", "python t.py --token \"$HF_TOKEN\" --token $T"],
     ["sh", "-c", "python t.py --token *** --token $T"]),
])
def test_redact_command(argv: list[str], stored: list[str]) -> None:
    assert redact_command(argv) == stored
    assert argv != stored or redacted_names(stored) == []


def test_redact_param_keeps_switches_and_ordinary_values() -> None:
    assert redact_param("password", "x") == MASK
    assert redact_param("use_auth_token", True) is True
    assert redact_param("token", None) is None
    assert redact_param("lr", 0.1) == 0.1


def test_run_stores_no_secret_and_runs_with_the_real_values(ws: Workspace) -> None:
    (ws.root / "check.py").write_text(CHECK)
    done = run_workbench(ws.root, "run", "--json", "--", "env", "AWS_SECRET_ACCESS_KEY=aws-s3cr3t",
                         sys.executable, "check.py", "--password=hunter2", "--token", "tok-42", "--lr", "0.1",
                         "db.password=pg-pw")
    assert done.returncode == 0, done.stderr + done.stdout
    info = json.loads(done.stdout)
    assert info["status"] == "succeeded"
    assert info["command"] == ["env", "AWS_SECRET_ACCESS_KEY=***", sys.executable, "check.py",
                               "--password=***", "--token", "***", "--lr", "0.1", "db.password=***"]
    assert info["params"] == {"password": "***", "token": "***", "lr": 0.1, "api_token": "***",
                              "hf_token": "***", "tokenizer": "bert-base", "max_tokens": 512}
    logs = run_workbench(ws.root, "logs", info["id"])
    assert "real values seen" in logs.stdout, logs.stdout + logs.stderr
    shown = run_workbench(ws.root, "show", info["id"])
    assert shown.returncode == 0 and "***" in shown.stdout
    # Nothing in the database (tables, WAL) holds a secret value.
    with sqlite3.connect(ws.paths.db) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in Path(ws.paths.db).parent.glob(Path(ws.paths.db).name + "*"):
        raw = path.read_bytes()
        assert not [s for s in SECRETS if s.encode() in raw], path


def test_rerun_of_a_redacted_command_refuses_in_one_line(ws: Workspace) -> None:
    (ws.root / "check.py").write_text(CHECK)
    done = run_workbench(ws.root, "run", "--json", "--", "env", "AWS_SECRET_ACCESS_KEY=aws-s3cr3t",
                         sys.executable, "check.py", "--password=hunter2", "--token", "tok-42",
                         "db.password=pg-pw")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["id"]
    before = len(json.loads(run_workbench(ws.root, "runs", "--json").stdout))
    again = run_workbench(ws.root, "rerun", run_id)
    assert again.returncode == 2
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in again.stderr
    for name in ("AWS_SECRET_ACCESS_KEY", "--password", "--token", "db.password"):
        assert name in lines[0]
    assert "environment variable" in lines[0]
    assert len(json.loads(run_workbench(ws.root, "runs", "--json").stdout)) == before
