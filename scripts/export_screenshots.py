#!/usr/bin/env python
"""Regenerate screenshots/: one SVG per screen of the TUI on the deterministic demo project,
plus a PNG of each where a converter exists (rsvg-convert from Debian's librsvg2-bin, or cairosvg).

    .venv/bin/python scripts/export_screenshots.py [--size 110x32] [--theme workbench-dark]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
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
    ("models", "models", []),
    ("deployments", "deployments", []),
    ("pipelines", "pipelines", []),
    ("help", "runs", ["question_mark"]),
    ("launch", "runs", ["n", *"python train.py --alpha 0.003"]),
]


async def shoot(ws, name: str, start: str, keys: list[str], size: tuple[int, int], theme: str) -> Path:  # type: ignore[no-untyped-def]
    from workbench.ui.app import WorkbenchApp
    from workbench.ui.demo import time_of_demo

    app = WorkbenchApp(ws, start=start, watch=False, clock=time_of_demo, gpu_probe=False)
    async with app.run_test(size=size) as pilot:
        app.theme = theme
        await pilot.pause(0.8)
        for key in keys:
            await pilot.press(key)
            if key in ("enter", "c", "m", "o"):
                await pilot.pause(0.8)
        await pilot.pause(1.0)
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
    from workbench.ui.demo import make_demo

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["HOME"] = str(home)
        root = make_demo(home / "digits-demo", deterministic=True, progress=lambda t: print(" ", t))
        os.chdir(root)
        ws = Workspace.open(root)
        pngs = 0
        for name, start, keys in SHOTS:
            svg = asyncio.run(shoot(ws, name, start, keys, (width, height), args.theme))
            pngs += to_png(svg) is not None
            print(f"  {svg.relative_to(ROOT)}")
        ws.close()
    if not pngs:
        print("no SVG converter found (apt-get install librsvg2-bin, or pip install cairosvg): SVG only",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
