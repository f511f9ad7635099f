"""Launch a run from the TUI: a dialog for the flags of ``workbench run``, then a live view.

The dialog builds a :class:`~workbench.tracking.request.RunRequest`, the same value the CLI builds
from its flags; the command is split with shlex into an argv list (never run through a shell). The
request is started as its own ``workbench run`` process in a new session (:meth:`UiData.launch`):
the TUI's event loop and threads do no work for the run, and quitting the TUI leaves the run going.
The launch screen finds the new run in the store as soon as the process has recorded it, streams
its log from the store, and Enter opens the run's detail (live charts) at any time; ``c`` cancels
it (SIGINT to the run's process group, as Ctrl+C in a terminal would).
"""

from __future__ import annotations

import os
import shlex
import signal
import threading
import time
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from workbench.tracking.request import RunRequest
from workbench.ui.data import Launched, RunRow
from workbench.ui.messages import Coalescer, DataChanged, Loaded
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.widgets.log_tail import LogTail

EXECUTORS = ("local", "docker", "kubernetes")
FIND_TIMEOUT = 120.0
"""How long the launch screen waits for ``workbench run`` to record the run (a big project's first
snapshot can take a while)."""


class LaunchDialog(ModalScreen[RunRequest | None]):
    """Collects a run request; dismisses with a :class:`RunRequest` or None."""

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
                yield Input(placeholder="GPUs (N or all)", id="launch-gpus")
            with Horizontal(classes="launch-row"):
                yield Input(placeholder="image (docker, kubernetes)", id="launch-image")
                yield Input(placeholder="namespace (kubernetes)", id="launch-namespace")
            yield Checkbox("isolated: own checkout, outputs copied back (local)", id="launch-isolated")
            yield Static("", id="launch-error", classes="error-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Run (Enter)", variant="primary", id="launch-go")
                yield Button("Cancel (Esc)", id="launch-cancel")

    def on_mount(self) -> None:
        self.query_one("#launch-command").focus()

    def _value(self, field: str) -> str | None:
        return self.query_one(f"#launch-{field}", Input).value.strip() or None

    def request(self) -> RunRequest | None:
        """The request the fields describe, or None (and the reason shown) when they cannot."""
        error = self.query_one("#launch-error", Static)
        try:
            argv = shlex.split(self._value("command") or "")
        except ValueError as exc:
            error.update(f"command: {exc}")
            return None
        if not argv:
            error.update("type a command to run")
            return None
        gpus = self._value("gpus")
        if gpus is not None and not (gpus.isdigit() or gpus == "all"):
            error.update("GPUs: a number or 'all'")
            return None
        return RunRequest(tuple(argv), name=self._value("name"),
                          executor=str(self.query_one("#launch-executor", Select).value),
                          image=self._value("image"), namespace=self._value("namespace"), gpus=gpus,
                          isolated=self.query_one("#launch-isolated", Checkbox).value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._go()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch-go":
            self._go()
        else:
            self.dismiss(None)

    def _go(self) -> None:
        request = self.request()
        if request is not None:
            self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)


class LaunchScreen(WorkbenchScreen):
    """Streams a launched run's log; Enter opens the run, ``c`` cancels it."""

    TITLE_TEXT = "Launch"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel_run", "Cancel run"),
        Binding("enter", "open", "Open run"),
    ]

    def __init__(self, request: RunRequest) -> None:
        super().__init__()
        self.request = request
        self.launched: Launched | None = None
        self.run: RunRow | None = None
        """The run once ``workbench run`` has recorded it; its final state when it has ended."""
        self.error: str | None = None
        self._stop = threading.Event()
        self._lines: Coalescer[str] = Coalescer(self._flush)

    def compose(self) -> ComposeResult:
        yield Static(f"Starting: {shlex.join(self.request.command)}", classes="screen-title",
                     id="launch-title")
        yield LogTail(id="launch-log")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.set_interval(0.1, self._lines.drain)
        self.run_worker(self._watch, thread=True, exit_on_error=False, name="launch", group="launch")

    def on_unmount(self) -> None:
        self._stop.set()  # stop following the log; the run itself goes on

    def _watch(self) -> None:
        """Worker: start the process, find its run, follow its log, report the end."""
        launched = self.data.launch(self.request)
        self.post_message(Loaded(launched, self._started))
        deadline = time.monotonic() + FIND_TIMEOUT
        run = None
        while run is None and not self._stop.is_set():
            run = self.data.find_launched(launched)
            if run is None:
                if launched.process.poll() is not None:
                    run = self.data.find_launched(launched)  # it may have recorded and ended at once
                    if run is None:
                        code = launched.process.returncode
                        text = launched.error_text() or f"workbench run exited with {code}"
                        self.post_message(Loaded(text, self._failed))
                        return
                elif time.monotonic() > deadline:
                    self.post_message(Loaded("the run did not appear in the store in time", self._failed))
                    return
                else:
                    self._stop.wait(0.05)
        if run is None:
            return
        self.post_message(Loaded(run, self._found))
        for line in self.data.log_lines(run.id, follow=True, stop=self._stop):
            self._lines.push(line)
        if not self._stop.is_set():
            launched.process.wait()
            self.post_message(Loaded(self.data.run(run.id), self._ended))

    def _title(self, text: str) -> None:
        self.query_one("#launch-title", Static).update(text)

    def _started(self, launched: Launched) -> None:
        self.launched = launched
        self._title(f"Starting (pid {launched.process.pid}): {shlex.join(self.request.command)}")

    def _found(self, run: RunRow) -> None:
        self.run = run
        self._title(f"Run {run.id} {run.status}: {shlex.join(self.request.command)}"
                    "  (Enter opens it, c cancels)")
        self.app.post_message(DataChanged("runs"))

    def _ended(self, run: RunRow) -> None:
        self._lines.drain()
        self.run = run
        self._title(f"Run {run.id} {run.status}"
                    + (f" (exit {run.exit_code})" if run.exit_code not in (None, 0) else "")
                    + "  (Enter opens it)")
        self.app.post_message(DataChanged("runs"))

    def _failed(self, text: str) -> None:
        self.error = text
        self._title(f"Could not start: {text}")
        self.notify(text, title="Launch", severity="error", timeout=10)

    def _flush(self, lines: list[str]) -> None:
        self.query_one(LogTail).add_batch(lines)

    def action_cancel_run(self) -> None:
        launched = self.launched
        if launched is None or launched.process.poll() is not None:
            return
        try:
            os.killpg(launched.process.pid, signal.SIGINT)
        except ProcessLookupError:
            return
        self.notify("cancelling…", timeout=3)

    def action_open(self) -> None:
        if self.run is not None:
            run_id = self.run.id
            self.app.pop_screen()
            self.wb.open_run(run_id)
