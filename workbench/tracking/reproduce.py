"""What ``rerun`` needs beyond running a command again: where to run it (the original run's
executor, image, GPUs and namespace, unless told otherwise) and whether its outputs came out the
same, byte for byte, as the original's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


class _File(Protocol):
    path: str
    hash: str | None


@dataclass
class Reproduction:
    """The rerun's outputs against the original run's, by path and content hash."""

    identical: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Outputs of the original that the rerun did not write."""
    extra: list[str] = field(default_factory=list)
    """Outputs of the rerun that the original did not write."""

    @property
    def verdict(self) -> str:
        """``reproduced`` (every original output, byte for byte), ``differs`` or ``no outputs``."""
        if not (self.identical or self.differ or self.missing):
            return "no outputs"
        return "reproduced" if not (self.differ or self.missing) else "differs"

    def summary(self) -> str:
        """One line for the terminal."""
        total = len(self.identical) + len(self.differ) + len(self.missing)
        if self.verdict == "no outputs":
            return "the original run recorded no outputs to compare"
        line = f"outputs reproduced byte for byte: {len(self.identical)} of {total}"
        for label, paths in (("differ", self.differ), ("missing", self.missing), ("new", self.extra)):
            if paths:
                shown = ", ".join(paths[:5]) + (f" (+{len(paths) - 5} more)" if len(paths) > 5 else "")
                line += f"; {label}: {shown}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, **asdict(self)}


def compare_outputs(original: Iterable[_File], rerun: Iterable[_File]) -> Reproduction:
    """Compare two runs' recorded outputs (files without a hash cannot be compared: they differ)."""
    before = {f.path: f.hash for f in original}
    after = {f.path: f.hash for f in rerun}
    result = Reproduction()
    for path in sorted(before):
        if path not in after:
            result.missing.append(path)
        elif before[path] is not None and before[path] == after[path]:
            result.identical.append(path)
        else:
            result.differ.append(path)
    result.extra = sorted(p for p in after if p not in before)
    return result


def launch_settings(executor: str, executor_info: dict[str, Any],
                    overrides: dict[str, Any]) -> dict[str, Any]:
    """The executor, image, GPUs, memory and namespace a rerun uses: the original run's, as its
    executor recorded them, where ``overrides`` (the user's flags; None = not given) says nothing.
    A Docker image is pinned by its id, so a re-tagged image cannot change what runs."""
    chosen = overrides.get("executor") or executor or "local"
    same = chosen == executor
    recorded: dict[str, Any] = {}
    if same and chosen != "local":
        recorded = {
            "image": executor_info.get("image_id") or executor_info.get("image") or None,
            "gpus": executor_info.get("gpus") or None,
            "memory": executor_info.get("memory_limit") or None,
            "namespace": executor_info.get("namespace") or None,
        }
    settings = {"executor": chosen, **recorded}
    for key in ("image", "gpus", "cpu", "memory", "namespace"):
        if overrides.get(key) is not None:
            settings[key] = overrides[key]
    return {k: v for k, v in settings.items() if v is not None}
