"""One line per GPU: utilisation bar and memory, or why there is no GPU."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from workbench.ui.data import GpuRow

_BARS = " ▁▂▃▄▅▆▇█"


def _bar(fraction: float, width: int = 10) -> str:
    fraction = max(0.0, min(1.0, fraction))
    full = int(fraction * width)
    rest = fraction * width - full
    tail = _BARS[int(rest * (len(_BARS) - 1))] if full < width else ""
    return ("█" * full + tail).ljust(width, "·")


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f}"


class GpuStrip(Static):
    """Set with :meth:`show`."""

    def show(self, gpus: list[GpuRow], reason: str) -> None:
        if not gpus:
            self.update(Text(f"GPU  {reason or 'no GPU'}", style="dim"))
            return
        text = Text()
        for gpu in gpus:
            util = gpu.utilisation or 0.0
            mem = (gpu.memory_used or 0) / gpu.memory_total if gpu.memory_total else 0.0
            text.append(f"GPU{gpu.index} ", style="bold")
            text.append(f"{gpu.name[:18]:<18} ")
            text.append(f"util {_bar(util / 100)} {util:3.0f}%  ")
            text.append(f"mem {_bar(mem)} {_gib(gpu.memory_used)}/{_gib(gpu.memory_total)} GiB\n")
        text.rstrip()
        self.update(text)
