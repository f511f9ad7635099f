"""Zero-code capture: params from a command's flags, metrics from its stdout, facts about the host.

* :func:`params_from_argv` turns ``--lr 0.1 --epochs=3 -b 32 --shuffle`` into typed params (through
  ``sh -c '...'``, ``env VAR=x`` and ``exec``); a Python child's argparse namespace, reported by the
  capture sitecustomize, replaces them where both name the same flag.
* :class:`StdoutMetricParser` finds ``name: value`` and ``name=value`` pairs in output lines, taking
  ``step``/``epoch``/``iter`` as the step; extra regexes (named groups ``name``, ``value``, optional
  ``step``) come from ``[tracking] metric_patterns``.
* :func:`host_facts` describes this machine (OS, CPU, memory, git state) cheaply.
The file-access capture for Python children lives in ``_inject/sitecustomize.py``.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

_FLAG = re.compile(r"^--?([A-Za-z][\w.\-]*)$")
_FLAG_VALUE = re.compile(r"^--?([A-Za-z][\w.\-]*)=(.*)$", re.DOTALL)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$")
_INTERPRETERS = re.compile(r"^(python[\d.]*|pypy[\d.]*|py)$")


def typed(text: str) -> Any:
    """``'3'`` -> 3, ``'0.1'`` -> 0.1, ``'true'`` -> True, anything else stays a string."""
    if _NUMBER.match(text):
        try:
            return int(text)
        except ValueError:
            return float(text)
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    return text


def _script_args(argv: Sequence[str]) -> list[str]:
    """The arguments after the program (and after ``python [-opts] script.py|-m module``)."""
    if not argv:
        return []
    args = list(argv[1:])
    if _INTERPRETERS.match(os.path.basename(argv[0])):
        while args and args[0].startswith("-") and args[0] not in ("-m", "-c"):
            args.pop(0)
        if args and args[0] in ("-m", "-c"):
            return args[2:]
        return args[1:]
    return args


_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")
_SHELL_OPERATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")", "<", ">", ">>", "<<", "|&", ";;"})


def real_command(argv: Sequence[str], depth: int = 0) -> list[str] | None:
    """The command a wrapper runs: ``sh -c 'python train.py --lr 0.1'`` (and bash, zsh ...),
    ``env [-i] [-u NAME] VAR=x python ...``, ``exec``, leading ``VAR=x`` assignments. None when the
    inner command cannot be read as one simple command (a pipeline, ``&&``, a redirect, bad quoting):
    then no flag is a param."""
    args = list(argv)
    while args and _ASSIGNMENT.match(args[0]):
        args.pop(0)
    if not args or depth > 4:
        return args
    program = os.path.basename(args[0])
    if program in ("env", "exec"):
        rest = args[1:]
        while program == "env" and rest and rest[0].startswith("-"):
            option = rest.pop(0)
            if option in ("-u", "--unset", "-C", "--chdir", "-S", "--split-string") and rest:
                rest.pop(0)
        return real_command(rest, depth + 1)
    if program in _SHELLS:
        rest = args[1:]
        while rest and rest[0][:1] in "-+" and not (rest[0][:2] != "--" and "c" in rest[0][1:]):
            option = rest.pop(0)  # -e, -x, -l, --norc, -o NAME ... before -c
            if option in ("-o", "+o", "-O", "+O") and rest:
                rest.pop(0)
        if not rest or rest[0][:1] not in "-+":
            return args  # a script file: its own arguments
        if len(rest) < 2:
            return []
        import shlex

        try:
            lexer = shlex.shlex(rest[1], posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            inner = list(lexer)
        except ValueError:
            return None
        if not inner or any(token in _SHELL_OPERATORS or token[:1] in "<>|&;" for token in inner):
            return None
        return real_command(inner, depth + 1)
    return args


def params_from_argv(argv: Sequence[str]) -> dict[str, Any]:
    """Flags of a command as typed params; positional arguments are not params. A wrapper's own
    flags (``sh -c``, ``env -i``) are not the command's: :func:`real_command` looks through them."""
    command = real_command(argv)
    if not command:
        return {}
    args = _script_args(command)
    params: dict[str, Any] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            break
        match = _FLAG_VALUE.match(arg)
        if match:
            params[match.group(1)] = typed(match.group(2))
            continue
        match = _FLAG.match(arg)
        if not match:
            continue
        name = match.group(1)
        following = args[index] if index < len(args) else None
        if following is not None and (not following.startswith("-") or _NUMBER.match(following)):
            params[name] = typed(following)
            index += 1
        elif name.startswith("no-") or name.startswith("no_"):
            params[name[3:]] = False
        else:
            params[name] = True
    return params


_VALUE = r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|nan|NaN|inf|Inf|infinity|Infinity)"
_PAIR = re.compile(
    r"(?<![\w./`-])([\"']?)([A-Za-z_][\w./-]{0,120}?)\1\s*(?::\s+|:(?=[+-.\d])|\s*=\s*)("
    + _VALUE
    + r")(?!%\|)(?:%)?(?![\w.:/-])"
)
"""``name=value`` and ``name: value`` pairs; the name may be quoted, so JSON lines
(``{"loss": 0.3, "step": 10}``) and printed Python dicts (Hugging Face's Trainer logs
``{'loss': 0.3, 'learning_rate': 5e-05, 'epoch': 0.5}``) are read too."""
STEP_KEYS = ("step", "epoch", "iter", "iteration", "global_step")
_SPACED_STEP = re.compile(r"(?<![\w.-])(step|epoch|iter|iteration|global_step)\s+\[?\s*(\d{1,12})(?:/\d+)?\]?"
                          r"(?![\w.%])", re.IGNORECASE)
"""A step written with a space (``step 100``, ``iter 100:``, ``| epoch   1 |``, ``Step [100/600]``)."""
_SEGMENT = re.compile(r"[,|;\t]|:\s")
_SPACED_PAIR = re.compile(r"\s*([A-Za-z_][\w/.-]{0,60}(?: [A-Za-z_][\w/.-]{0,60}){0,2})\s+(" + _VALUE
                          + r")(?:%|ms|s)?\s*")
"""One segment ``name value`` (``loss 1.2345``, ``train loss 2.34``, ``time 20.00ms``), as nanoGPT
(``iter 100: loss 1.2345, time 20.00ms, mfu 10.00%``) and PyTorch's examples (``| lr 5.00 |
ms/batch 10.00 | loss  7.50 |``) print them."""
_ROUND = re.compile(r"\s*\[(\d{1,12})\]\s")
"""A line that starts with ``[N]``: XGBoost's boosting round (``[10]\tvalidation_0-rmse:0.52``)."""


NOT_METRIC_KEYS = frozenset({"v_num"})
"""Names in progress bars that are never metrics: Lightning's logger version (``v_num=0``)."""


class StdoutMetricParser:
    """Finds metric values in output lines."""

    def __init__(self, patterns: Iterable[str] = (), ignore: Iterable[str] = ()) -> None:
        self.patterns = [re.compile(p) for p in patterns]
        self.ignore = set(ignore) | NOT_METRIC_KEYS

    def parse(self, line: str, *, strict: bool = False) -> list[tuple[str, float, int | None]]:
        """``(key, value, step)`` triples found in one line (step None: the key's next step). A line
        of carriage-return updates (a progress bar redrawn in place, as tqdm and Lightning draw it
        into a pipe) is read by its last update, the one left on screen: one point, not one per redraw.
        ``strict`` (stderr, where libraries say what they do: ``TPU available: False, using: 0 TPU
        cores``): a line counts only with two values, or one and its step."""
        if "\r" in line:
            line = next((part for part in reversed(line.split("\r")) if part.strip()), "")
        if len(line) > 4096 or not (self.patterns or "=" in line or ":" in line or _separated(line)):
            return []
        found: list[tuple[str, float, int | None]] = []
        for pattern in self.patterns:
            for match in pattern.finditer(line):
                groups = match.groupdict()
                value = _to_float(groups.get("value"))
                if groups.get("name") and value is not None:
                    step_text = groups.get("step")
                    step = int(step_text) if step_text and step_text.isdigit() else None
                    found.append((str(groups["name"]), value, step))
        if found:
            return found
        pairs = [(m.group(2), m.group(3)) for m in _PAIR.finditer(line)]
        spaced = not pairs
        if spaced:
            pairs = _spaced_pairs(line)
            if not pairs:
                return []
        found_step: int | None = None
        for name, text in pairs:
            if name.lower() in STEP_KEYS and text.lstrip("+-").isdigit():
                found_step = int(text)  # an integer; a fractional epoch ('epoch': 1.0 too) is progress
                break
        if found_step is None and (leading := _ROUND.match(line)):
            found_step = int(leading.group(1))
        if found_step is None:
            found_step = _spaced_step(line)
        if (spaced or strict) and found_step is None and len(pairs) < 2:
            return []  # one "word number" alone ("batch 20", "Python 3.11") is too weak a sign
        for name, text in pairs:
            if name.lower() in STEP_KEYS or name in self.ignore:
                continue
            value = _to_float(text)
            if value is not None:
                found.append((name, value, found_step))
        return found


_NOT_METRICS = ("Traceback (most recent call last)", "Error:", "Warning:", "warn(", "Exception:",
                "DEPRECAT")


def stderr_may_hold_metrics(line: str) -> bool:
    """Whether a line of stderr is read for metrics: progress bars (tqdm and Lightning draw theirs
    there) and log records are; a traceback's lines (``File ...``, the indented source) and
    warnings, which quote code such as ``lr = 0.1``, are not."""
    return not line.startswith(("  File ", "    ")) and not any(word in line for word in _NOT_METRICS)


def _spaced_pairs(line: str) -> list[tuple[str, str]]:
    """``(name, value)`` of each segment of ``line`` (cut at ``, | ; tab`` and ``: ``) that is a name
    of one to three words and a number; a name's words are joined by ``_`` (``train_loss``)."""
    out: list[tuple[str, str]] = []
    for segment in _SEGMENT.split(line):
        if (match := _SPACED_PAIR.fullmatch(segment)) is not None:
            words = match.group(1).split()
            # "end of epoch 1" is a step, not a metric named end_of_epoch
            name = words[-1] if words[-1].lower() in STEP_KEYS else "_".join(words)
            out.append((name, match.group(2)))
    return out


def _spaced_step(line: str) -> int | None:
    """The step a line names with a space (``Epoch [1/10], Step [100/600]``: 100): a step or an
    iteration before an epoch, which counts coarser."""
    found = {m.group(1).lower(): int(m.group(2)) for m in _SPACED_STEP.finditer(line)}
    return next((found[key] for key in ("global_step", "step", "iteration", "iter", "epoch") if key in found),
                None)


def _separated(line: str) -> bool:
    """Whether the line has a separator between segments (``,``, ``|``, ``;``, tab): only then can
    it hold ``name value`` pairs without ``=`` or ``:``."""
    return "," in line or "|" in line or ";" in line or "\t" in line


def _to_float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _in_git_tree(root: Path) -> bool:
    """A ``.git`` (folder, or file for worktrees and submodules) here or above, or ``GIT_DIR`` set:
    without one, no git process is started at all."""
    if os.environ.get("GIT_DIR"):
        return True
    return any((folder / ".git").exists() for folder in (root, *root.parents))


def git_facts(root: Path) -> dict[str, Any] | None:
    """Commit, branch and dirty state when ``root`` is inside a git work tree (one git process:
    ``git status --porcelain=v2 --branch``)."""
    if not _in_git_tree(root):
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    facts: dict[str, Any] = {"commit": "", "branch": "", "dirty": False}
    for line in done.stdout.splitlines():
        if line.startswith("# branch.oid "):
            oid = line[len("# branch.oid "):].strip()
            facts["commit"] = "" if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line[len("# branch.head "):].strip()
            facts["branch"] = "HEAD" if head == "(detached)" else head
        elif line and not line.startswith("#"):
            facts["dirty"] = True
    return facts


@functools.cache
def _machine_facts() -> dict[str, Any]:
    """What does not change while this process lives (asked once per process: a sweep or a
    pipeline runs many commands from one)."""
    facts: dict[str, Any] = {
        "os": _os_name(),
        "hostname": socket.gethostname(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "runner_python": platform.python_version(),
    }
    memory = _memory_total()
    if memory is not None:
        facts["memory_total"] = memory
    return facts


def _os_name() -> str:
    """``platform.platform()`` without its ``uname -p`` child process (~10-30 ms before every run).

    On Linux the string includes the processor only where ``uname -p`` differs from the machine
    name, and it answers either "unknown" (dropped from the string) or the machine name, so the
    lazily resolved processor is set to "" beforehand: the same string, without the fork."""
    if sys.platform.startswith("linux"):
        uname = platform.uname()
        if "processor" not in vars(uname):
            vars(uname)["processor"] = ""
    return platform.platform()


def _memory_total() -> int | None:
    """Bytes of RAM: from /proc/meminfo where there is one (importing psutil costs ~8 ms)."""
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_facts(root: Path) -> dict[str, Any]:
    """OS, CPU, memory, hostname, the runner's Python and the project's git state."""
    facts = dict(_machine_facts())
    git = git_facts(root)
    if git is not None:
        facts["git"] = git
    return facts


def finite_or_text(value: float | None) -> float | str | None:
    """A metric value for JSON output: NaN and infinities as the strings 'nan', 'inf', '-inf'."""
    if value is None or math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
