"""The close records of the capture sitecustomize: for each project file a Python job writes, the
SHA-256 of exactly the bytes in it when the job closed it, however it was written."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap

from workbench.core.workspace import Workspace

JOB = """\
import os, pathlib
import numpy as np

open("text.txt", "w", encoding="utf-8").write("héllo\\n")          # text, sequential
pathlib.Path("data/blob.bin").write_bytes(b"xyz" * 100_000)       # pathlib
np.save("data/array.npy", np.arange(5000))                        # C writes on the descriptor + seek
with open("patched.bin", "wb") as f:                              # seek back and overwrite
    f.write(b"abcdef")
    f.seek(0)
    f.write(b"X")
with open("log.txt", "a") as f:                                   # append to an existing file
    f.write("two\\n")
import pickle
from sklearn.tree import DecisionTreeClassifier
with open("models/.tmp-model", "wb") as f:                        # atomic save: temp file, then replace
    f.write(pickle.dumps(DecisionTreeClassifier()))               # (a real model: registered by content)
os.replace("models/.tmp-model", "models/model.pkl")
fd = os.open("raw.bin", os.O_WRONLY | os.O_CREAT)                 # os.open: not tracked
os.write(fd, b"raw")
os.close(fd)
with open("../outside.txt", "w") as f:                           # outside the project: not tracked
    f.write("x")
"""


def test_close_records_hold_the_bytes_each_file_had(ws: Workspace) -> None:
    (ws.root / "job.py").write_text(JOB, encoding="utf-8")
    (ws.root / "data").mkdir()
    (ws.root / "models").mkdir()
    (ws.root / "log.txt").write_text("one\n", encoding="utf-8")
    info = ws.runs.execute([sys.executable, "job.py"])
    assert info.status == "succeeded", [x.text for x in ws.runs.log_lines(info.id)]
    lines = (ws.paths.runs / info.id / "writes.jsonl").read_text(encoding="utf-8").splitlines()
    last = {}
    for line in lines:
        record = json.loads(line)
        last[record["path"]] = record
    root = str(ws.root)
    expected = ["data/array.npy", "data/blob.bin", "log.txt", "models/.tmp-model", "models/model.pkl",
                "patched.bin", "text.txt"]
    assert sorted(p[len(root) + 1:] for p in last) == expected
    for rel in expected:
        if rel == "models/.tmp-model":
            continue  # replaced: its record moved to models/model.pkl
        data = (ws.root / rel).read_bytes()
        record = last[f"{root}/{rel}"]
        assert (record["sha256"], record["size"]) == (hashlib.sha256(data).hexdigest(), len(data)), rel
    assert (ws.root / "patched.bin").read_bytes() == b"Xbcdef"
    # Every file is the run's own: no conflict, and the model is registered with its bytes.
    assert ws.runs.conflicts(info.id) == []
    [version] = ws.runs.run_models(info.id)
    assert version.path == "models/model.pkl"
    assert version.hash == ws.versions.hash_file(ws.root / "models/model.pkl")


def test_reading_and_writing_still_behave_like_open(ws: Workspace) -> None:
    """Modes, errors and objects are those of the real open: a job sees no difference."""
    (ws.root / "job.py").write_text(textwrap.dedent("""\
        import io
        f = open("a.txt", "w")
        assert isinstance(f, io.TextIOWrapper) and f.mode == "w" and f.name == "a.txt"
        f.write("1"); f.close()
        b = open("b.bin", "wb", buffering=0)
        assert isinstance(b, io.FileIO) and b.write(b"xy") == 2
        b.close()
        with open("c.bin", "x+b") as c:
            assert isinstance(c, io.BufferedRandom)
            c.write(b"abc"); c.seek(0); assert c.read() == b"abc"
        for bad in ("wr", "wbt", "q"):
            try:
                open("d.txt", bad)
            except ValueError:
                pass
            else:
                raise SystemExit("mode " + bad + " accepted")
        try:
            open("c.bin", "x")
        except FileExistsError:
            pass
        assert open("a.txt").read() == "1"
        print("all good")
        """), encoding="utf-8")
    info = ws.runs.execute([sys.executable, "job.py"])
    logs = [x.text for x in ws.runs.log_lines(info.id)]
    assert info.status == "succeeded" and "all good" in logs, logs
