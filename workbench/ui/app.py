"""The Workbench TUI: one App that receives its Workspace and shows the project in screens.

Screens are Textual modes reached by number keys (1 Overview ... 6 Pipelines, 7 Monitor) and from the command
palette (Ctrl+P), which also lists every action of the current screen and every theme. Drill-down
screens (run detail, compare) are pushed on top; ``q`` goes back, and quits from a top screen; Esc
goes back but never quits.
All data comes from :class:`~workbench.ui.data.UiData` in thread workers; one handler turns any
worker error into a notification. The watcher runs inside the app while it is open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from workbench.errors import WorkbenchError
from workbench.ui.data import UiData
from workbench.ui.messages import DataChanged, WatcherState
from workbench.ui.themes import DEFAULT_THEME, load_themes, user_theme_dir

if TYPE_CHECKING:
    from workbench.core.workspace import Workspace
    from workbench.tracking.request import RunRequest

SCREENS: tuple[tuple[str, str, str], ...] = (
    ("overview", "1", "Overview"),
    ("history", "2", "History"),
    ("runs", "3", "Runs"),
    ("models", "4", "Models"),
    ("deployments", "5", "Deployments"),
    ("pipelines", "6", "Pipelines"),
    ("monitor", "7", "Monitor"),
)


def _screen_factory(mode: str) -> type[Screen[Any]]:
    from workbench.ui.screens import deployments, history, models, monitor, overview, pipelines, runs

    screens: dict[str, type[Screen[Any]]] = {
        "overview": overview.OverviewScreen, "history": history.HistoryScreen, "runs": runs.RunsScreen,
        "models": models.ModelsScreen, "deployments": deployments.DeploymentsScreen,
        "pipelines": pipelines.PipelinesScreen, "monitor": monitor.MonitorScreen,
    }
    return screens[mode]


class WorkbenchApp(App[None]):
    """The TUI. ``WorkbenchApp(ws).run()``; tests use ``run_test()``."""

    CSS_PATH = "app.tcss"
    TITLE = "Workbench"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        *[Binding(key, f"screen('{mode}')", label, show=False) for mode, key, label in SCREENS],
        Binding("question_mark", "help", "Help"),
        Binding("n", "launch", "New run", show=False),
        Binding("S", "snapshot", "Snapshot now", show=False),
        Binding("W", "toggle_watcher", "Watcher on/off", show=False),
        Binding("T", "next_theme", "Next theme", show=False),
    ]

    watcher_state: reactive[str] = reactive("off")

    def __init__(self, ws: Workspace, *, start: str = "overview", watch: bool = True,
                 poll_seconds: float = 2.0, clock: Callable[[], float] = time.time,
                 gpu_probe: bool = True) -> None:
        super().__init__()
        self.clock = clock
        """What 'now' is for ages shown on screen (tests and screenshots fix it)."""
        self.gpu_probe = gpu_probe
        self.ws = ws
        self.data = UiData(ws)
        self.start_mode = start
        self.watch_enabled = watch
        self.poll_seconds = poll_seconds
        self.last_snapshot: str | None = None
        self._watcher_stop = threading.Event()
        self.deploying: dict[str, str] = {}
        """Deploys started here that are still running: ``model:version`` -> what they are doing."""
        loaded = load_themes(user_theme_dir())
        self.theme_problems = loaded.problems
        for theme in loaded.themes:
            self.register_theme(theme)
        wanted = ws.config.ui.theme
        self.theme = wanted if wanted in self.available_themes else DEFAULT_THEME
        for mode, _, _ in SCREENS:
            self.add_mode(mode, partial(self._make_screen, mode))

    def _make_screen(self, mode: str) -> Screen[Any]:
        return _screen_factory(mode)()

    # -- lifecycle ------------------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        for problem in self.theme_problems:
            self.notify(problem, title="Theme file skipped", severity="warning")
        self.switch_mode(self.start_mode)
        if self.watch_enabled:
            self.start_watcher()

    def on_unmount(self) -> None:
        self._watcher_stop.set()

    # -- errors: the one handler ---------------------------------------------------------------------
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.error)

    def show_error(self, error: BaseException) -> None:
        if isinstance(error, WorkbenchError):
            self.notify(error.one_line(), title="Workbench", severity="error", timeout=8)
        else:
            self.log.error(repr(error))
            self.notify(f"{type(error).__name__}: {error}", title="Unexpected error",
                        severity="error", timeout=12)

    # -- navigation -----------------------------------------------------------------------------------
    def action_screen(self, mode: str) -> None:
        if self.current_mode == mode and len(self.screen_stack) > 1:
            while len(self.screen_stack) > 1:
                self.pop_screen()
            return
        self.switch_mode(mode)

    def go_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()
        else:
            self.exit()

    def action_help(self) -> None:
        from workbench.ui.screens.help import HelpScreen, bindings_of

        if isinstance(self.screen, HelpScreen):
            return
        title = getattr(self.screen, "TITLE_TEXT", "") or type(self.screen).__name__
        self.push_screen(HelpScreen(title, bindings_of(self.screen)))

    def open_run(self, run_id: str) -> None:
        from workbench.ui.screens.run_detail import RunDetailScreen

        self.push_screen(RunDetailScreen(run_id))

    def open_compare(self, run_ids: list[str], sweep_id: str | None = None) -> None:
        from workbench.ui.screens.compare import CompareScreen

        if len(run_ids) < 2:
            self.notify("Mark at least two runs with space (or put the cursor on a sweep), then press c",
                        severity="warning")
            return
        self.push_screen(CompareScreen(run_ids, sweep_id=sweep_id))

    # -- actions available everywhere ---------------------------------------------------------------
    def action_launch(self) -> None:
        from workbench.ui.screens.launch import LaunchDialog

        self.push_screen(LaunchDialog(default_executor=self.ws.config.executor.default),
                         self._launch)

    def _launch(self, request: RunRequest | None) -> None:
        if request is None:
            return
        from workbench.ui.screens.launch import LaunchScreen

        self.push_screen(LaunchScreen(request))

    def deploy_model(self, spec: str) -> None:
        """Deploy ``model:version`` in a worker and show the Deployments screen, where the rollout
        (and, the first time, the model server's build) shows live."""
        if spec in self.deploying:
            self.notify(f"{spec} is already being deployed", severity="warning")
            return
        self.deploying[spec] = "starting"

        def progress(done: int, total: int) -> None:
            self.deploying[spec] = f"building the model server: {done}/{total} packages"

        def job() -> None:
            try:
                if not self.data.server_ready(spec):
                    self.deploying[spec] = "building the model server (first use, about a minute)"
                    self.data.prepare_server(spec, progress)
                self.deploying[spec] = "rolling out"
                row = self.data.deploy(spec)
            finally:
                self.deploying.pop(spec, None)
                self.post_message(DataChanged("deployments"))
            self.call_from_thread(self.notify, f"{spec} serves as {row.name}: {row.url}", title="Deploy")

        self.run_worker(job, thread=True, exit_on_error=False, group=f"deploy:{spec}", name=f"deploy {spec}")
        self.action_screen("deployments")

    def action_snapshot(self) -> None:
        def job() -> None:
            snap = self.data.snapshot_now("from the TUI")
            self.call_from_thread(self.notify, f"snapshot {snap[:8]}", title="Snapshot")
            self.post_message(DataChanged("snapshot"))

        self.run_worker(job, thread=True, exit_on_error=False, group="snapshot")

    def action_next_theme(self) -> None:
        names = sorted(self.available_themes)
        self.theme = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]
        self.notify(f"theme: {self.theme}", timeout=2)

    def _remember_theme(self, theme: Any) -> None:
        name = theme.name

        def job() -> None:
            if self.ws.config.ui.theme != name:
                self.ws.config.ui.theme = name
                self.ws.save_config()

        self.run_worker(job, thread=True, exit_on_error=False, group="save-theme", exclusive=True)

    def on_data_changed(self, message: DataChanged) -> None:
        self.screen.post_message(DataChanged(message.what))

    # -- the watcher ----------------------------------------------------------------------------------
    def action_toggle_watcher(self) -> None:
        if self.watcher_state in ("off", "unavailable") or self.watcher_state.startswith("error"):
            self.start_watcher()
        else:
            self._watcher_stop.set()

    def start_watcher(self) -> None:
        from workbench.ui.watcher_bridge import run_watcher

        self._watcher_stop = threading.Event()
        self.run_worker(partial(run_watcher, self, self._watcher_stop), thread=True,
                        exit_on_error=False, group="watcher", exclusive=True, name="watcher")

    def on_watcher_state(self, message: WatcherState) -> None:
        self.watcher_state = message.state
        if message.last_snapshot:
            self.last_snapshot = message.last_snapshot
            self.screen.post_message(DataChanged("snapshot"))

    # -- the command palette ------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for mode, key, label in SCREENS:
            yield SystemCommand(f"Go to {label} ({key})", f"Show the {label} screen",
                                partial(self.action_screen, mode))
        yield SystemCommand("New run… (n)", "Launch a command as a recorded run", self.action_launch)
        yield SystemCommand("Snapshot now (S)", "Version the project folder now", self.action_snapshot)
        yield SystemCommand("Watcher on/off (W)", "Start or stop auto-versioning", self.action_toggle_watcher)
        yield SystemCommand("Keys (?)", "Every binding of this screen", self.action_help)
        for name in sorted(self.available_themes):
            yield SystemCommand(f"Theme: {name}", "Switch theme (remembered in the project config)",
                                partial(setattr, self, "theme", name))
        seen = {"help", "launch", "snapshot", "toggle_watcher", "command_palette"}
        for node, bindings_map in screen._binding_chain:
            if node is self:
                continue
            for bindings in bindings_map.key_to_bindings.values():
                for binding in bindings:
                    if binding.description and binding.action not in seen:
                        seen.add(binding.action)
                        yield SystemCommand(f"{binding.description} ({binding.key})",
                                            f"{type(node).__name__} action",
                                            partial(self._run_on, node, binding.action))
        yield from super().get_system_commands(screen)

    def _run_on(self, node: Any, action: str) -> None:
        self.call_later(self.run_action, action, node)
