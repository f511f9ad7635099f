#!/usr/bin/env python
"""Regenerate screenshots/: one SVG per screen of the TUI on the deterministic demo project,
plus a PNG of each where a converter exists (rsvg-convert from Debian's librsvg2-bin, or cairosvg).

On top of the demo it adds, for these pictures only: a real 4-run sweep (``ws.workflows.sweep``),
a 3-stage ``workbench.yaml`` pipeline run with ``ws.workflows.repro`` and then made stale by a
param change, and, when the local model server is already built, a real local deployment that
gets predictions while the Deployments screen is shot (undeployed afterwards).

    .venv/bin/python scripts/export_screenshots.py [--size 110x32] [--theme workbench-dark]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "screenshots"
SHOTS: list[tuple[str, str, list[str]]] = [
    ("overview", "overview", []),
    ("history", "history", []),
    ("runs", "runs", []),
    ("run-detail", "runs", ["slash", *"name==sgd-a1e-3-long", "enter", "enter"]),
    ("run-metrics", "runs", ["slash", *"name==sgd-a1e-3-long", "enter", "enter", "m"]),
    ("run-provenance", "runs", ["slash", *"name==sgd-a1e-3-long", "enter", "enter", "o"]),
    ("compare", "runs", ["slash", *"name~sgd", "enter", "space", "space", "space", "space", "c"]),
    ("runs-sweep", "runs", ["slash", *"name~alpha-epochs", "enter"]),
    ("compare-rank", "runs", ["slash", *"name~alpha-epochs", "enter", "c", "r"]),
    ("models", "models", []),
    ("deployments", "deployments", []),
    ("pipelines", "pipelines", []),
    ("help", "runs", ["question_mark"]),
    ("launch", "runs", ["n", *"python train.py --alpha 0.003"]),
]

def start_deployment(ws) -> threading.Event | None:  # type: ignore[no-untyped-def]
    """Deploy the newest digits model locally and keep predicting, if the model server is built."""
    os.environ.setdefault("WORKBENCH_LOCAL_RUNTIME", "process")
    try:
        if not ws.deployments.server_ready("digits"):
            print("  deployments: the local model server is not built; the screen is shot empty")
            return None
        print("  deploy digits (local)")
        ws.deployments.deploy("digits", name="digits")
    except Exception as exc:  # a picture without a deployment beats no pictures
        print(f"  deployments: {exc}")
        return None
    stop = threading.Event()
    request = {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64",
                           "data": [0.0] * 32 + [8.0] * 32}]}

    def traffic() -> None:
        while not stop.wait(0.1):
            with contextlib.suppress(Exception):
                ws.deployments.predict("digits", request)

    threading.Thread(target=traffic, daemon=True).start()
    return stop


async def shoot(ws, name: str, start: str, keys: list[str], size: tuple[int, int], theme: str) -> Path:  # type: ignore[no-untyped-def]
    from workbench.demo import time_of_demo
    from workbench.ui.app import WorkbenchApp

    app = WorkbenchApp(ws, start=start, watch=False, clock=time_of_demo, gpu_probe=False)
    async with app.run_test(size=size) as pilot:
        app.theme = theme
        await pilot.pause(0.8)
        for key in keys:
            await pilot.press(key)
            if key in ("enter", "c", "m", "o"):
                await pilot.pause(0.8)
        await pilot.pause(7.0 if name == "deployments" else 1.0)
        path = OUT / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(OUT))
    return path


def to_png(svg: Path) -> Path | None:
    png = svg.with_suffix(".png")
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", "-w", "1400", str(svg), "-o", str(png)], check=True)
        return png
    try:
        import cairosvg  # type: ignore[import-not-found]
    except ImportError:
        return None
    cairosvg.svg2png(url=str(svg), write_to=str(png), output_width=1400)
    return png


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="110x32")
    parser.add_argument("--theme", default="workbench-dark")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    OUT.mkdir(exist_ok=True)
    os.environ["TZ"] = "UTC"
    time.tzset()
    from workbench.core.workspace import Workspace
    from workbench.demo import add_workflows, make_demo

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))  # the built model server
        os.environ["HOME"] = str(home)
        root = make_demo(home / "digits-demo", deterministic=True, progress=lambda t: print(" ", t))
        os.chdir(root)
        ws = Workspace.open(root)
        add_workflows(ws, sys.executable, lambda t: print(" ", t))
        stop = start_deployment(ws)
        pngs = 0
        try:
            for name, start, keys in SHOTS:
                svg = asyncio.run(shoot(ws, name, start, keys, (width, height), args.theme))
                pngs += to_png(svg) is not None
                print(f"  {svg.relative_to(ROOT)}")
        finally:
            if stop is not None:
                stop.set()
                ws.deployments.undeploy("digits")
            ws.close()
    if not pngs:
        print("no SVG converter found (apt-get install librsvg2-bin, or pip install cairosvg): SVG only",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
