#!/usr/bin/env python
"""Generate the demo project (real runs of scikit-learn on digits, snapshots) into a folder.

    .venv/bin/python scripts/make_demo_project.py DIR [--deterministic]

``--deterministic`` fixes times and run ids (what the snapshot tests and screenshots use).
The logic lives in workbench.demo so that ``workbench demo`` works from an installed wheel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.demo import make_demo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--deterministic", action="store_true")
    args = parser.parse_args()
    root = make_demo(args.dest, deterministic=args.deterministic, progress=lambda text: print(" ", text))
    print(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
