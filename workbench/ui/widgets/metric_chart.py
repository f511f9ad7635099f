"""Metric curves drawn with plotext (through textual-plotext), one or several runs overlaid.

The chart never sees raw series: screens ask the tracking query layer for a downsampled series
(min/max/last per bucket, at most a few points per terminal column), so drawing a run with a
million points costs the same as drawing one with a thousand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from textual_plotext import PlotextPlot

from workbench.ui.data import Series


@dataclass
class Curve:
    label: str
    series: Series


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard-style exponential moving average (weight 0: unchanged)."""
    if weight <= 0 or not values:
        return values
    out: list[float] = []
    last = next((v for v in values if not math.isnan(v)), 0.0)
    for value in values:
        if not math.isnan(value) and not math.isinf(value):
            last = last * weight + (1 - weight) * value
        out.append(last)
    return out


class MetricChart(PlotextPlot):
    """A chart of curves. Set with :meth:`show`; x by step or by time, optional log y and smoothing."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.curves: list[Curve] = []
        self.x_axis = "step"
        self.log_y = False
        self.smoothing = 0.0
        self.title = ""
        self.x_label: str | None = None
        self.y_floor: float | None = None

    def show(self, curves: list[Curve], title: str = "", x_label: str | None = None,
             y_floor: float | None = None) -> None:
        """Draw ``curves``; ``y_floor`` pins the bottom of the y axis (0 for rates and percentages,
        which plotext would otherwise centre on a flat zero line, drawing negative values)."""
        self.curves = curves
        self.title = title
        self.x_label = x_label
        self.y_floor = y_floor
        self.redraw()

    def redraw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        plotted = 0
        top = -math.inf
        for curve in self.curves:
            xs = curve.series.times if self.x_axis == "time" and curve.series.times else curve.series.steps
            if self.x_axis == "time" and xs:
                start = xs[0]
                xs = [x - start for x in xs]
            ys = smooth(curve.series.values, self.smoothing)
            points = [(x, y) for x, y in zip(xs, ys, strict=False)
                      if not math.isnan(y) and not math.isinf(y) and (not self.log_y or y > 0)]
            if not points:
                continue
            plt.plot([p[0] for p in points], [p[1] for p in points], label=curve.label[:24],
                     marker="braille")
            top = max(top, max(p[1] for p in points))
            plotted += 1
        if self.log_y:
            plt.yscale("log")
        elif self.y_floor is not None and plotted:
            plt.ylim(self.y_floor, top if top > self.y_floor else self.y_floor + 1.0)
        plt.xlabel(self.x_label or ("seconds" if self.x_axis == "time" else "step"))
        if not plotted:
            plt.title(f"{self.title}  (no data)")
        self.refresh()
