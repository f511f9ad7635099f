"""Terminal drawings for the workflows commands: the DAG by levels, sweep tables, and a
parallel-coordinates view of a sweep's params against a metric (plotext). CLI layer only.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType

    from workbench.workflows.sweep_runner import SweepInfo, SweepMember

STATE_STYLE = {"fresh": "green", "stale": "yellow", "running": "blue", "failed": "red"}


def render_dag(data: dict[str, Any], status: dict[str, dict[str, Any]]) -> RenderableType:
    """Stages level by level; each shows its state and the stages (and files) it reads from."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
    table.add_column("level", justify="right", style="dim")
    table.add_column("stage", style="bold")
    table.add_column("state")
    table.add_column("reads from")
    edges = {(e["from"], e["to"]): e["paths"] for e in data["edges"]}
    by_name = {s["name"]: s for s in data["stages"]}
    for index, level in enumerate(data["levels"]):
        for position, name in enumerate(level):
            stage = by_name[name]
            info = status.get(name)
            state = Text("")
            if info:
                state = Text(info["state"], style=STATE_STYLE.get(info["state"], ""))
                if info["reasons"]:
                    reasons = "; ".join(info["reasons"])
                    state.append(f" ({reasons[:60] + '…' if len(reasons) > 60 else reasons})", style="dim")
            links = Text()
            for up in stage["upstream"]:
                if links:
                    links.append(", ")
                links.append(f"◀ {up}", style="cyan")
                links.append(f" {', '.join(edges.get((up, name), []))}", style="dim")
            table.add_row(str(index) if position == 0 else "", ("├ " if position else "┌ ") + name
                          if len(level) > 1 else name, state, links)
    return table


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%m-%d %H:%M") if ts else ""


def sweeps_table(sweeps: list[SweepInfo]) -> RenderableType:
    from rich.table import Table

    table = Table(header_style="bold", box=None, padding=(0, 1))
    for column in ("id", "name", "status", "runs", "done", "mode", "parallel", "executor", "created"):
        table.add_column(column, no_wrap=column in ("id", "status", "created"))
    for s in sweeps:
        counts = s.counts
        done = ", ".join(f"{n} {k}" for k, n in counts.items())
        style = {"succeeded": "green", "failed": "red", "running": "blue"}.get(s.status, "yellow")
        table.add_row(s.id, s.name, f"[{style}]{s.status}[/]", str(s.size), done, s.mode, str(s.parallel),
                      s.executor, _when(s.created_at))
    if not sweeps:
        table.add_row("", "(no sweeps yet: workbench sweep --param ... -- COMMAND)", *[""] * 7)
    return table


def ranking_table(info: SweepInfo, ranked: list[SweepMember], metric: str | None,
                  order: str) -> RenderableType:
    from rich.table import Table

    names = [spec.partition("=")[0] for spec in info.space]
    title = f"sweep {info.name} ({info.id}) {info.status}"
    if metric:
        title += f", ranked by {metric} ({'higher' if order == 'max' else 'lower'} is better)"
    table = Table(title=title, header_style="bold", box=None, padding=(0, 1), title_justify="left")
    table.add_column("#", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column(metric or "metric", justify="right", style="bold")
    table.add_column("run")
    table.add_column("status")
    listed = {m.idx for m in ranked}
    rest = [m for m in info.members if m.idx not in listed]
    for rank, member in enumerate([*ranked, *rest], start=1):
        value = "" if member.metric is None else f"{member.metric:.6g}"
        style = "green" if rank == 1 and member.metric is not None else ""
        table.add_row(str(rank) if member.metric is not None else "-",
                      *[str(member.params.get(n, "")) for n in names], value, member.run_id or "",
                      member.status, style=style)
    return table


def _axis(values: list[Any]) -> tuple[list[float], str, str]:
    """Values mapped to 0..1, with the labels of the axis ends."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if numeric:
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        return [(v - low) / span for v in values], f"{low:.3g}", f"{high:.3g}"
    levels = sorted({str(v) for v in values})
    step = max(len(levels) - 1, 1)
    return [levels.index(str(v)) / step for v in values], levels[0], levels[-1]


def parallel_coordinates(info: SweepInfo, ranked: list[SweepMember], metric: str, order: str,
                         width: int = 100, height: int = 20) -> Any:
    """One line per run across the params' axes and the metric's; the best runs drawn brightest."""
    import plotext as plt
    from rich.text import Text

    names = [spec.partition("=")[0] for spec in info.space]
    axes = [*names, metric]
    columns = [[m.params.get(n) for m in ranked] for n in names] + [[m.metric for m in ranked]]
    scaled, ends = [], []
    for column in columns:
        values, low, high = _axis(column)
        scaled.append(values)
        ends.append(f"{low}..{high}")
    plt.clf()
    plt.plotsize(width, height)
    plt.theme("clear")
    xs = list(range(len(axes)))
    palette = ["green", "cyan", "blue", "magenta", "gray"]
    for position in reversed(range(len(ranked))):  # best drawn last, on top
        colour = palette[min(position * len(palette) // max(len(ranked), 1), len(palette) - 1)]
        plt.plot(xs, [scaled[a][position] for a in range(len(axes))], color=colour, marker="braille")
    plt.xticks(xs, [f"{a} [{e}]" for a, e in zip(axes, ends, strict=True)])
    plt.yticks([0, 1], ["min", "max"])
    plt.title(f"params against {metric} (green = best, {'max' if order == 'max' else 'min'} is better)")
    return Text.from_ansi(plt.build())
