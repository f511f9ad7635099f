"""The stage graph: edges from files, cycle detection, topological order, parallel levels.

Stage B depends on stage A when one of B's inputs is one of A's outputs, lies inside an output
folder of A, or is a folder holding one of A's outputs. Order is stable: among stages that could
go next, the one declared first in ``workbench.yaml`` wins, so runs and drawings are repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.workflows.spec import Pipeline, PipelineError, is_within


@dataclass
class Dag:
    """Stages and their dependencies (``upstream[b]`` = the stages b reads from)."""

    order: list[str]
    """Declaration order."""
    upstream: dict[str, list[str]]
    downstream: dict[str, list[str]] = field(default_factory=dict)
    via: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(upstream, downstream) -> the paths that link them."""

    def __post_init__(self) -> None:
        self.downstream = {name: [] for name in self.order}
        for name in self.order:
            for up in self.upstream[name]:
                self.downstream[up].append(name)

    # -- order ---------------------------------------------------------------------------------
    def topological(self, only: set[str] | None = None) -> list[str]:
        """Stages in an order where each comes after everything it reads (restricted to ``only``)."""
        wanted = set(self.order) if only is None else only
        done: set[str] = set()
        result: list[str] = []
        remaining = [n for n in self.order if n in wanted]
        while remaining:
            for name in remaining:
                if all(up in done or up not in wanted for up in self.upstream[name]):
                    result.append(name)
                    done.add(name)
                    remaining.remove(name)
                    break
            else:  # pragma: no cover - find_cycle() runs first in build_dag
                raise PipelineError("the pipeline has a cycle")
        return result

    def levels(self, only: set[str] | None = None) -> list[list[str]]:
        """Stages grouped so that each level depends only on earlier levels (run a level in parallel)."""
        depth: dict[str, int] = {}
        wanted = set(self.order) if only is None else only
        for name in self.topological(wanted):
            ups = [depth[u] for u in self.upstream[name] if u in wanted]
            depth[name] = 1 + max(ups) if ups else 0
        out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for name in self.topological(wanted):
            out[depth[name]].append(name)
        return out

    def ancestors(self, name: str) -> set[str]:
        """``name`` and every stage it depends on, directly or not."""
        seen = {name}
        stack = [name]
        while stack:
            for up in self.upstream[stack.pop()]:
                if up not in seen:
                    seen.add(up)
                    stack.append(up)
        return seen

    def descendants(self, name: str) -> set[str]:
        """``name`` and every stage that depends on it."""
        seen = {name}
        stack = [name]
        while stack:
            for down in self.downstream[stack.pop()]:
                if down not in seen:
                    seen.add(down)
                    stack.append(down)
        return seen

    # -- drawing -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Drawing data: nodes with their level, and edges with the linking paths (JSON-ready)."""
        level_of = {n: i for i, lv in enumerate(self.levels()) for n in lv}
        return {
            "stages": [{"name": n, "level": level_of[n], "upstream": list(self.upstream[n]),
                        "downstream": list(self.downstream[n])} for n in self.order],
            "edges": [{"from": up, "to": down, "paths": paths}
                      for (up, down), paths in self.via.items()],
            "levels": self.levels(),
        }


def _links(producer_outputs: list[str], consumer_inputs: list[str]) -> list[str]:
    paths: list[str] = []
    for inp in consumer_inputs:
        for out in producer_outputs:
            if is_within(inp, out) or is_within(out, inp):
                paths.append(inp)
                break
    return paths


def find_cycle(order: list[str], upstream: dict[str, list[str]]) -> list[str] | None:
    """A cycle as a list of stage names ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for up in upstream[name]:
            if state.get(up) == 1:
                return [*path[path.index(up):], up]
            if up not in state:
                found = visit(up)
                if found:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in order:
        if name not in state:
            found = visit(name)
            if found:
                # found runs against the data flow (consumer -> producer); show producer first.
                return list(reversed(found))
    return None


def build_dag(pipeline: Pipeline) -> Dag:
    """The graph of a pipeline; raises :class:`PipelineError` on a cycle (naming its stages)."""
    order = list(pipeline.stages)
    upstream: dict[str, list[str]] = {n: [] for n in order}
    via: dict[tuple[str, str], list[str]] = {}
    for consumer in pipeline.stages.values():
        for producer in pipeline.stages.values():
            paths = _links(producer.outputs, consumer.inputs)
            if not paths:
                continue
            if producer.name == consumer.name:
                raise PipelineError(
                    f"{consumer.mark('input:' + paths[0])}: cycle: stage '{consumer.name}' reads "
                    f"its own output '{paths[0]}'", "a stage cannot depend on what it writes")
            upstream[consumer.name].append(producer.name)
            via[(producer.name, consumer.name)] = paths
    cycle = find_cycle(order, upstream)
    if cycle:
        first = pipeline.stages[cycle[0]]
        raise PipelineError(f"{first.where}: cycle: {' -> '.join(cycle)}",
                            "stages depend on each other through their files; break the loop")
    return Dag(order=order, upstream=upstream, via=via)
