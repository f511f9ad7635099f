"""A parallel-coordinates view drawn with plotext: one line per run across its params to a metric.

Each axis is normalised to 0..1: a numeric param by its range over the runs shown, any other param
by the position of its value among the sorted distinct values, and the last axis is the metric
(its range is in the title). Runs come ranked best first; the best ones are drawn last so they sit
on top, and only the top :data:`MAX_LINES` are drawn.
"""

from __future__ import annotations

from typing import Any

from textual_plotext import PlotextPlot

from workbench.ui.data import RankRow

MAX_LINES = 12


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def normalise(values: list[Any]) -> list[float]:
    """0..1 positions for one axis (numbers by range, anything else by sorted distinct value)."""
    if values and all(_is_number(v) for v in values):
        low, high = min(values), max(values)
        return [0.5 if high == low else (float(v) - low) / (high - low) for v in values]
    distinct = sorted({repr(v) for v in values})
    if len(distinct) < 2:
        return [0.5] * len(values)
    index = {text: i for i, text in enumerate(distinct)}
    return [index[repr(v)] / (len(distinct) - 1) for v in values]


def parallel_lines(rows: list[RankRow], params: list[str]) -> tuple[list[str], list[tuple[str, list[float]]]]:
    """Axis labels and, per run (best first), its normalised position on every axis."""
    shown = rows[:MAX_LINES]
    axes = [normalise([r.params.get(p) for r in shown]) for p in params]
    axes.append(normalise([r.value for r in shown]))
    lines = []
    for i, row in enumerate(shown):
        lines.append((f"{i + 1}. {row.name}", [axis[i] for axis in axes]))
    return [*params, "metric"], lines


class ParallelChart(PlotextPlot):
    """Params (x axes) against a metric (the last axis), one line per ranked run."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.axes: list[str] = []
        self.lines: list[tuple[str, list[float]]] = []

    def show(self, rows: list[RankRow], params: list[str], metric: str, order: str) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.axes, self.lines = parallel_lines(rows, params) if rows else ([], [])
        if not self.lines:
            plt.title(f"{metric}: no run logged it")
            self.refresh()
            return
        xs = [float(i) for i in range(len(self.axes))]
        for label, ys in reversed(self.lines):  # the best drawn last, on top
            plt.plot(xs, ys, label=label[:18], marker="braille")
        labels = [*self.axes[:-1], metric]
        plt.xticks(xs, [text[:12] for text in labels])
        plt.yticks([0, 0.5, 1], ["low", "mid", "high"])
        best, worst = rows[0].value, rows[min(len(rows), MAX_LINES) - 1].value
        plt.title(f"{metric} ({order} is best): {best:.4g} best … {worst:.4g}")
        self.refresh()
