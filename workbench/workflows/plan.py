"""Decide, stage by stage, whether to run, restore from the store, or skip, and say why.

* skip ("fresh"): the fingerprint equals the one of the stage's last successful run and its
  outputs on disk are the ones that run left;
* restore ("cached"): some earlier successful run had this exact fingerprint (the same command,
  params and input bytes): its outputs are written back from the store, naming that run;
* run: anything else, with the reasons (:func:`workbench.workflows.stale.explain`).

For ``--dry`` the planner walks the whole selection at once: a stage downstream of one that will
run is marked to run too ("upstream 'x' will re-run"), and one downstream of a stage that will be
restored sees the restored outputs' recorded hashes instead of what is on disk now.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.workflows import records
from workbench.workflows.dag import Dag
from workbench.workflows.records import StageRecord
from workbench.workflows.spec import Pipeline, PipelineError, Stage, is_within, render_command
from workbench.workflows.stale import (
    Fingerprint,
    Hasher,
    ParamsFiles,
    exists,
    explain,
    hash_paths,
    iter_files,
    resolve_params,
)


def placement_of(stage: Stage) -> dict[str, Any]:
    """Where and how the stage runs, for its fingerprint (a working folder only when it has one, so
    fingerprints of stages without one stay as they were)."""
    placement: dict[str, Any] = {"executor": stage.executor, "image": stage.image, "gpus": stage.gpus}
    if stage.workdir != ".":
        placement["workdir"] = stage.workdir
    return placement


@dataclass
class PlanItem:
    """What will happen to one stage."""

    stage: str
    action: str  # run | restore | skip
    reasons: list[str] = field(default_factory=list)
    source: StageRecord | None = None
    """For restore/skip: the record whose outputs are (or will be) in place."""
    fingerprint: Fingerprint | None = None

    @property
    def source_run(self) -> str | None:
        return self.source.producer if self.source else None

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "action": self.action, "reasons": self.reasons,
                "source_run": self.source_run}


class Planner:
    """Fingerprints stages against the store's records."""

    def __init__(self, root: Path, pipeline: Pipeline, dag: Dag, db: sqlite3.Connection,
                 hasher: Hasher) -> None:
        self.root = root
        self.pipeline = pipeline
        self.dag = dag
        self.db = db
        self.hasher = hasher
        self.params = ParamsFiles(root)

    def producers_of(self, stage: Stage, path: str) -> list[str]:
        """Upstream stages whose outputs cover input ``path``."""
        return [up for up in self.dag.upstream[stage.name]
                if any(is_within(path, out) or is_within(out, path)
                       for out in self.pipeline.stages[up].outputs)]

    def fingerprint(self, stage: Stage, overlay: dict[str, str] | None = None) -> Fingerprint:
        """Fingerprint from disk, except paths in ``overlay`` (hashes restores will put there)."""
        params = resolve_params(stage, self.params)
        inputs: dict[str, str] = {}
        for inp in stage.inputs:
            over = {p: h for p, h in (overlay or {}).items() if is_within(p, inp)}
            if over:
                inputs.update(over)
                continue
            if not exists(self.root, inp):
                raise PipelineError(
                    f"{stage.mark('input:' + inp)}: stage '{stage.name}': input '{inp}' does not exist "
                    "and no stage writes it", "create it or fix the path")
            inputs.update(hash_paths(self.root, [inp], self.hasher))
        return Fingerprint(
            cmd=render_command(stage.cmd, params), params=params, inputs=dict(sorted(inputs.items())),
            outputs=list(stage.outputs),
            placement=placement_of(stage))

    def check_inputs(self, selected: list[str]) -> None:
        """Before anything runs: every input exists or is written by a stage; params resolve."""
        for name in selected:
            stage = self.pipeline.stages[name]
            if stage.frozen:
                continue
            resolve_params(stage, self.params)
            for inp in stage.inputs:
                if not exists(self.root, inp) and not self.producers_of(stage, inp):
                    raise PipelineError(
                        f"{stage.mark('input:' + inp)}: stage '{name}': input '{inp}' does not exist "
                        "and no stage writes it", self._missing_hint(inp))

    def _missing_hint(self, inp: str) -> str:
        if (self.root / f"{inp}.dvc").is_file():
            return f"it is tracked by DVC ({inp}.dvc): fetch the data first ('dvc pull' or 'dvc checkout')"
        return "create it or fix the path"

    def outputs_on_disk(self, stage: Stage) -> dict[str, str]:
        return hash_paths(self.root, stage.outputs, self.hasher)

    def output_problems(self, stage: Stage, recorded: dict[str, str]) -> list[str]:
        """How the outputs on disk differ from ``recorded`` (empty when they match)."""
        problems: list[str] = []
        on_disk: set[str] = set()
        for out in stage.outputs:
            on_disk.update(iter_files(self.root, out))
        for path, digest in sorted(recorded.items()):
            if path not in on_disk:
                problems.append(f"output '{path}' missing")
            elif self.hasher(self.root / path) != digest:
                problems.append(f"output '{path}' modified")
        problems.extend(f"output '{p}' not from the recorded run" for p in sorted(on_disk - set(recorded)))
        return problems

    def last_fingerprint(self, stage: str) -> tuple[StageRecord | None, Fingerprint | None]:
        last = records.last_done(self.db, stage)
        if last is None:
            return None, None
        try:
            return last, Fingerprint.from_json(last.parts)
        except ValueError:
            return last, None

    def decide(self, stage: Stage, *, force: bool = False,
               overlay: dict[str, str] | None = None) -> PlanItem:
        if stage.frozen:  # never run, whatever changed (DVC's frozen stages)
            return PlanItem(stage.name, "skip", ["frozen"], source=records.last_done(self.db, stage.name))
        fp = self.fingerprint(stage, overlay)
        last, last_fp = self.last_fingerprint(stage.name)
        if force:
            return PlanItem(stage.name, "run", ["forced"], fingerprint=fp)
        if stage.always_changed:
            return PlanItem(stage.name, "run", ["always changed"], fingerprint=fp)
        digest = fp.digest()
        if last is not None and last.fingerprint == digest:
            problems = self.output_problems(stage, last.outputs)
            if not problems:
                return PlanItem(stage.name, "skip", ["up to date"], source=last, fingerprint=fp)
            return PlanItem(stage.name, "restore", problems, source=last, fingerprint=fp)
        reasons = explain(last_fp, fp)
        for candidate in records.by_fingerprint(self.db, digest):
            if candidate.outputs or not stage.outputs:
                return PlanItem(stage.name, "restore", reasons, source=candidate, fingerprint=fp)
        return PlanItem(stage.name, "run", reasons, fingerprint=fp)

    def plan(self, selected: list[str], *, force: bool = False) -> list[PlanItem]:
        """A dry run over ``selected`` (in topological order)."""
        items: list[PlanItem] = []
        running: set[str] = set()
        overlay: dict[str, str] = {}
        for name in selected:
            stage = self.pipeline.stages[name]
            ups = [u for u in self.dag.upstream[name] if u in running]
            if ups and not stage.frozen:
                item = PlanItem(name, "run", [f"upstream '{u}' will re-run" for u in ups])
            else:
                item = self.decide(stage, force=force, overlay=overlay)
            if item.action == "run":
                running.add(name)
            elif item.action == "restore" and item.source is not None:
                overlay.update(item.source.outputs)
            items.append(item)
        return items
