"""A small real pipeline of Python scripts for the workflows tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from workbench.core.workspace import Workspace

UPPER = "import sys\nopen(sys.argv[2], 'w').write(open(sys.argv[1]).read().upper())\n"
REPEAT = ("import sys\nprint('repeating', sys.argv[3], 'times')\n"
          "open(sys.argv[2], 'w').write(open(sys.argv[1]).read() * int(sys.argv[3]))\n")
COUNT = "import sys\ntext = open(sys.argv[1]).read()\nopen(sys.argv[2], 'w').write(str(len(text)))\n"

PIPELINE = """\
stages:
  upper:
    cmd: python upper.py raw.txt out/upper.txt
    inputs: [upper.py, raw.txt]
    outputs: [out/upper.txt]
  repeat:
    cmd: python repeat.py out/upper.txt out/repeat.txt {k}
    inputs: [repeat.py, out/upper.txt]
    outputs: [out/repeat.txt]
    params:
      k: {ref: k}
  count:
    cmd: python count.py out/repeat.txt count.txt
    inputs: [count.py, out/repeat.txt]
    outputs: [count.txt]
"""


def write_project(root: Path, pipeline: str = PIPELINE) -> None:
    (root / "raw.txt").write_text("hello\n")
    (root / "params.yaml").write_text("k: 2\n")
    (root / "upper.py").write_text(UPPER)
    (root / "repeat.py").write_text(REPEAT)
    (root / "count.py").write_text(COUNT)
    (root / "workbench.yaml").write_text(textwrap.dedent(pipeline))


@pytest.fixture
def pipe(ws: Workspace) -> Workspace:
    write_project(ws.root)
    return ws
