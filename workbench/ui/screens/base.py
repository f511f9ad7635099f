"""What every Workbench screen shares: the data source, query workers, back/quit, periodic reload.

A screen asks for data with :meth:`WorkbenchScreen.load`: ``self.load(fn, self._show_runs)``
runs ``fn`` in a thread worker and hands its result to ``_show_runs`` on the UI thread (through a
:class:`~workbench.ui.messages.Loaded` message). The signature is generic, ``fn: Callable[[], T]``
and ``on_done: Callable[[T], None]``, so mypy rejects a handler whose parameter type does not
match what the query returns: the type check replaces the old ``on_loaded_<topic>`` dispatch by
name. A worker's failure goes to the app's one error handler, which turns it into a notification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from workbench.ui.messages import DataChanged, Loaded

if TYPE_CHECKING:
    from workbench.ui.app import WorkbenchApp
    from workbench.ui.data import UiData

T = TypeVar("T")


class SteadyFooter(Footer):
    """A footer that rebuilds itself only when the keys it shows change.

    Textual's footer recomposes (tens of widgets, ~60-100 ms here) on every focus change. Typing
    into a text box (the Runs filter, a prompt) is not a reason to: the footer keeps the keys it
    showed, and when focus comes back with the same keys nothing is rebuilt.
    """

    _shown: tuple[tuple[str, str, bool], ...] | None = None

    def bindings_changed(self, screen: Screen[Any]) -> None:
        from textual.widgets import Input

        if self._shown is not None and isinstance(screen.focused, Input):
            return
        shown = tuple((b.key, b.description, enabled) for _, b, enabled, _ in screen.active_bindings.values()
                      if b.show)
        if shown == self._shown:
            return
        self._shown = shown
        super().bindings_changed(screen)


class WorkbenchScreen(Screen[None]):
    """Base class of the full screens.

    Textual calls a message handler of *every* class in the MRO (``on_mount`` here and in a
    subclass both run, the subclass's first), so subclasses must not call ``super().on_mount()``
    and the like: that ran these twice (two reloads and two timers per screen).
    """

    TITLE_TEXT: ClassVar[str] = ""
    RELOAD_SECONDS: ClassVar[float | None] = None
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "back", "Back/Quit"),
        Binding("escape", "leave", "Back", show=False),
        Binding("R", "reload", "Reload", show=False),
    ]

    @property
    def wb(self) -> WorkbenchApp:
        return self.app  # type: ignore[return-value]

    @property
    def data(self) -> UiData:
        return self.wb.data

    def theme_style(self, variable: str, extra: str = "") -> str:
        """A Rich style string from a theme variable (``text-success``...), for cells drawn by
        DataTable; plain ``extra`` when the theme gives no colour value."""
        value = str(self.app.get_css_variables().get(variable, ""))
        colour = value if value.startswith("#") else ""
        return f"{extra} {colour}".strip()

    def compose_title(self) -> Static:
        return Static(self.TITLE_TEXT, classes="screen-title")

    def compose_footer(self) -> Footer:
        return SteadyFooter(show_command_palette=True)

    def on_mount(self) -> None:
        if self.RELOAD_SECONDS:
            self.set_interval(self.RELOAD_SECONDS, self._tick)
        self.reload()

    def _tick(self) -> None:
        if self.is_current:
            self.reload(quiet=True)

    def reload(self, quiet: bool = False) -> None:
        """Ask the workers for this screen's data. Subclasses override."""

    def action_reload(self) -> None:
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload(quiet=True)

    def on_data_changed(self, message: DataChanged) -> None:
        message.stop()
        if self.is_current:
            self.reload(quiet=True)

    def load(self, fn: Callable[[], T], on_done: Callable[[T], None], *, group: str | None = None,
             exclusive: bool = True) -> None:
        """Run ``fn`` in a thread worker and call ``on_done(result)`` on the UI thread. ``group``
        (default: the handler's name) is the worker group that ``exclusive`` replaces."""
        name = group or str(getattr(on_done, "__name__", "load"))

        def job() -> None:
            value = fn()
            self.post_message(Loaded(value, on_done))

        self.run_worker(job, thread=True, group=name, exclusive=exclusive,
                        exit_on_error=False, name=f"{type(self).__name__}:{name}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Worker messages do not bubble: hand failures to the app's one error handler."""
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.wb.show_error(event.worker.error)

    def on_loaded(self, message: Loaded[Any]) -> None:
        message.stop()
        message.deliver()

    def action_back(self) -> None:
        self.wb.go_back()

    def action_leave(self) -> None:
        """Esc: back from a pushed screen; on a top screen it never quits (``q`` does), so an Esc
        meant for a box that has just closed cannot end the session."""
        if len(self.wb.screen_stack) > 1:
            self.wb.go_back()
