"""Launch a run from the TUI: a dialog for command, name, executor, image and GPUs, then a live view.

The command is split with shlex into an argv list (never run through a shell). The run goes
through ``ws.runs.execute`` in a thread worker, exactly as ``workbench run`` does; its output
streams into the launch screen, and the run shows up on the Runs screen at once.
"""

from __future__ import annotations

import shlex
import threading
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from workbench.ui.data import RunRow
from workbench.ui.messages import Coalescer
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.widgets.log_tail import LogTail

EXECUTORS = ("local", "docker", "kubernetes")


class LaunchDialog(ModalScreen[dict[str, Any] | None]):
    """Collects a launch spec; dismisses with a dict or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default_executor: str = "local") -> None:
        super().__init__()
        self.default_executor = default_executor if default_executor in EXECUTORS else "local"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog launch"):
            yield Label("New run", classes="dialog-title")
            yield Input(placeholder="command, e.g. python train.py --lr 0.1", id="launch-command")
            yield Input(placeholder="name (optional)", id="launch-name")
            with Horizontal(classes="launch-row"):
                yield Select([(e, e) for e in EXECUTORS], value=self.default_executor,
                             allow_blank=False, id="launch-executor")
                yield Input(placeholder="image", id="launch-image")
                yield Input(placeholder="GPUs", id="launch-gpus", type="integer")
            yield Static("", id="launch-error", classes="error-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Run (Enter)", variant="primary", id="launch-go")
                yield Button("Cancel (Esc)", id="launch-cancel")

    def on_mount(self) -> None:
        self.query_one("#launch-command").focus()

    def spec(self) -> dict[str, Any] | None:
        text = self.query_one("#launch-command", Input).value.strip()
        try:
            argv = shlex.split(text)
        except ValueError as exc:
            self.query_one("#launch-error", Static).update(f"command: {exc}")
            return None
        if not argv:
            self.query_one("#launch-error", Static).update("type a command to run")
            return None
        gpus_text = self.query_one("#launch-gpus", Input).value.strip()
        return {
            "command": argv,
            "name": self.query_one("#launch-name", Input).value.strip() or None,
            "executor": str(self.query_one("#launch-executor", Select).value),
            "image": self.query_one("#launch-image", Input).value.strip() or None,
            "gpus": int(gpus_text) if gpus_text else None,
        }

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._go()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch-go":
            self._go()
        else:
            self.dismiss(None)

    def _go(self) -> None:
        spec = self.spec()
        if spec is not None:
            self.dismiss(spec)

    def action_cancel(self) -> None:
        self.dismiss(None)


class LaunchScreen(WorkbenchScreen):
    """Streams a launched run's output; ``c`` cancels it, Enter opens the run when it has finished."""

    TITLE_TEXT = "Launch"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel_run", "Cancel run"),
        Binding("enter", "open", "Open run"),
    ]

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.spec = spec
        self.cancel = threading.Event()
        self.result: RunRow | None = None
        self._lines: Coalescer[str] = Coalescer(self._flush)

    def compose(self) -> ComposeResult:
        yield Static(f"Running: {shlex.join(self.spec['command'])}", classes="screen-title",
                     id="launch-title")
        yield LogTail(id="launch-log")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.set_interval(0.1, self._lines.drain)
        spec = self.spec

        def job() -> RunRow:
            return self.data.execute(spec["command"], name=spec["name"], executor=spec["executor"],
                                     image=spec["image"], gpus=spec["gpus"], on_line=self._lines.push,
                                     cancel_event=self.cancel)

        def finished(run: RunRow) -> None:
            self.result = run

        worker = self.run_worker(job, thread=True, exit_on_error=False, name="launch")
        self._worker = worker
        self.set_interval(0.25, self._check)
        _ = finished

    def _check(self) -> None:
        worker = self._worker
        if worker.is_finished and self.result is None and worker.result is not None:
            self._lines.drain()
            self.result = worker.result
            self.query_one("#launch-title", Static).update(
                f"Run {self.result.short_id} {self.result.status} (Enter opens it)")

    def _flush(self, lines: list[str]) -> None:
        self.query_one(LogTail).add_batch(lines)

    def action_cancel_run(self) -> None:
        self.cancel.set()
        self.notify("cancelling…")

    def action_open(self) -> None:
        if self.result is not None:
            self.app.pop_screen()
            self.wb.open_run(self.result.id)
