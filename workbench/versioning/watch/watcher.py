"""Auto-versioning: watch the project folder and snapshot every change by itself.

``Watcher(versions).start()`` (``ws.versions.watcher()`` builds one) takes the project's watch lock
(one watcher per project; see :mod:`lock`), starts a watchdog observer on the folder and a thread
that turns debounced bursts of events (:mod:`debounce`) into ``versions.snapshot(kind="auto",
changed_paths=...)``.
``stop()`` ends both cleanly. The CLI (``workbench watch``) and the TUI use the same class and hear
about what happens through ``on_event(WatchEvent)``, called from the watcher's threads; the core
never prints.

- Start-up catches up: the first snapshot rescans the whole folder, so whatever changed while no
  watcher ran (a crash, a SIGKILL, a reboot) is versioned.
- Ignored paths and ``.workbench/`` never trigger; an edit to ``.workbenchignore`` reloads the rules
  and rescans (:mod:`filter`). On Linux ignored folders are not even watched
  (:mod:`inotify`): no inotify watch on ``.venv``, ``node_modules`` or the blob cache.
- When the folder cannot be watched (inotify limits, a file system without notifications) the
  watcher rescans every ``rescan_seconds`` instead and says so once (``fallback``); when the OS
  event queue overflows it rescans the whole folder and says so once (``overflow``).
- A file still being written is not versioned half-written: paths with an event or an mtime in the
  last quiet interval wait for the next batch (passed as ``snapshot(hold=...)``, so they keep their
  previous version even inside a folder or a full rescan), and paths the store reports as having
  changed while it read them (``SnapshotInfo.skipped``, reason "changed while being read") are
  retried after the quiet interval.
- While it runs in events mode the watcher keeps the paths changed since its last snapshot in a
  record ``status`` reads instead of rescanning (:mod:`pending`), and answers ``status``'s
  cookies so that the record is known to be complete.
- Auto snapshots are thinned by the project's retention rule (:mod:`retention`) after
  snapshots, at most once a minute.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from workbench.errors import ConfigError, WorkbenchError
from workbench.paths import STORE_DIRNAME
from workbench.versioning.watch.debounce import Batch, Debouncer
from workbench.versioning.watch.lock import WatchLock, WatchStatus, watch_status
from workbench.versioning.watch.pending import PendingTracker, is_cookie
from workbench.versioning.watch.retention import PruneReport, head_snapshot_id, parse_rule, prune_auto

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

    from workbench.versioning.service import VersioningService
    from workbench.versioning.watch.filter import EventFilter

PRUNE_EVERY_SECONDS = 60.0
# watchdog logs its own hiccups; the core never prints, so they must not reach Python's last-resort
# stderr handler (the CLI or TUI may configure logging to show them).
logging.getLogger("watchdog").addHandler(logging.NullHandler())
# watchdog warns (RuntimeWarning) when a folder is re-watched after a quick create/move; harmless.
warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)
_MAX_BACKOFF_SECONDS = 30.0
_CLOCK_SLACK_SECONDS = 0.05  # file times come from the kernel's coarse clock, a few ms behind time.time()


@dataclass(frozen=True)
class WatchEvent:
    """Something the watcher wants its host (CLI, TUI) to know.

    kinds: ``started``, ``snapshot`` (a new snapshot was committed), ``fallback`` (polling from now
    on), ``overflow`` (events were lost; rescanning), ``ignore-reloaded``, ``retry`` (files still being
    written), ``pruned``, ``error``, ``stopped``.
    """

    kind: str
    message: str
    at: float = field(default_factory=time.time)
    snapshot_id: str | None = None
    paths: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "message": self.message, "at": self.at,
                "snapshot": self.snapshot_id, "paths": list(self.paths)}


# -- overflow detection: watchdog only logs it, so listen to its logger --------------------------

_overflow_listeners: weakref.WeakSet[Watcher] = weakref.WeakSet()


class _OverflowHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            for watcher in list(_overflow_listeners):
                watcher._on_overflow()


_overflow_handler = _OverflowHandler(level=logging.WARNING)


def reports_closes(observer: object) -> bool:
    """Whether ``observer`` reports a written file's close: watchdog's inotify observer (and ours,
    :mod:`workbench.versioning.watch.inotify`, built on it) do; polling and other platforms do not."""
    try:
        from watchdog.observers.inotify import InotifyObserver
    except (ImportError, OSError):  # not Linux
        return False
    return isinstance(observer, InotifyObserver)


def _install_overflow_handler() -> None:
    for name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
        logger = logging.getLogger(name)
        if _overflow_handler not in logger.handlers:
            logger.addHandler(_overflow_handler)


class Watcher:
    """Watches one project and versions it as it changes. Thread-based; ``start()`` / ``stop()``."""

    def __init__(self, versions: VersioningService, *, quiet: float | None = None,
                 max_interval: float | None = None, rescan_seconds: float | None = None,
                 retention: str | None = None,
                 on_event: Callable[[WatchEvent], None] | None = None, polling: bool = False,
                 observer_factory: Callable[[], BaseObserver] | None = None) -> None:
        self.versions = versions
        self.project = versions.project
        cfg = self.project.config.watch
        self.quiet = float(quiet if quiet is not None else cfg.quiet_seconds)
        self.max_interval = float(max_interval if max_interval is not None else cfg.max_interval_seconds)
        self.rescan_seconds = float(rescan_seconds if rescan_seconds is not None
                                    else max(self.max_interval, 5 * self.quiet))
        for value, option, key in ((self.quiet, "--quiet", "quiet_seconds"),
                                   (self.max_interval, "--max-interval", "max_interval_seconds"),
                                   (self.rescan_seconds, "--rescan", "")):
            if not (math.isfinite(value) and value > 0):
                where = f"{option}, or watch.{key} in .workbench/config.toml" if key else option
                raise ConfigError(f"watch: {option.lstrip('-')} must be a positive number of seconds, "
                                  f"got {value:g}", f"fix {where}")
        self.retention = parse_rule(cfg.retention if retention is None else retention)
        self.on_event = on_event
        self.mode = "polling" if polling else "events"
        self._observer_factory = observer_factory
        self._debouncer = Debouncer(self.quiet, self.max_interval)
        self._lock = WatchLock(self.project.paths.locks)
        self._tracker: PendingTracker | None = None
        self._observer: BaseObserver | None = None
        self._writes_end_with_close = False
        """The observer reports a write's close (inotify's ``closed``): ``.workbenchignore`` is re-read
        then, not on the ``modified`` events of a write still in progress (truncated to nothing, half
        written), which would load passing rules and reload again. Other observers (polling, other
        platforms) report no close, so every ``modified`` is acted on."""
        self._filter: EventFilter | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._flush_on_stop = True
        self._busy = threading.Event()  # a snapshot is being taken
        self._hold = False
        self._overflowed = False
        self._last_prune = 0.0
        self.snapshots = 0
        self.last_snapshot: str | None = None
        self.last_error: str | None = None

    # -- life cycle ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Take the lock (BusyError if another watcher holds it), start watching, queue a catch-up."""
        if self._thread is not None:
            raise WorkbenchError("this watcher was already started", "make a new Watcher to start again")
        from workbench.versioning.watch.filter import EventFilter

        self._filter = EventFilter(self.project.root, self.versions.ignore_matcher,
                                   extra_excluded=(self.project.cache_dir,))
        # snapshot(hold=...) keeps files still being written at their previous version (if supported)
        self._hold = "hold" in inspect.signature(self.versions.snapshot).parameters
        record = self._lock.acquire(mode=self.mode)
        self._tracker = PendingTracker(self.project.paths.store_dir, record.pid, record.started_at)
        try:
            self._tracker.write()  # untrusted until the catch-up rescan is committed
            if self.mode == "events":
                self._start_observer()
            else:
                self._tracker.distrust("polling")
            took_over = self._lock.took_over
            note = f" (took over from a dead watcher, pid {took_over.pid})" if took_over else ""
            self._emit("started", f"watching {self.project.root} ({self.mode}){note}")
            self._debouncer.request_now(full=True)  # catch up on what changed while no watcher ran
            self._thread = threading.Thread(target=self._loop, name="workbench-watch", daemon=True)
            self._thread.start()
        except BaseException:
            self._stop_observer()
            self._tracker.remove()
            self._lock.release()
            raise

    def stop(self, *, flush: bool = True, timeout: float | None = 60.0) -> None:
        """Stop watching. ``flush``: first snapshot what is still pending. Releases the lock."""
        self._flush_on_stop = flush
        self._stopping.set()
        self._stop_observer()
        self._debouncer.close()
        if self._thread is not None:
            self._thread.join(timeout)
        _overflow_listeners.discard(self)
        if self._thread is None or not self._thread.is_alive():
            if self._tracker is not None:
                self._tracker.remove()
            self._lock.release()

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot_now(self) -> None:
        """Ask for a snapshot of the whole folder as soon as possible."""
        self._debouncer.request_now(full=True)

    def status(self) -> WatchStatus:
        return watch_status(self.project.paths.locks)

    @property
    def idle(self) -> bool:
        """Nothing pending and no snapshot in progress."""
        return self._debouncer.pending == 0 and not self._busy.is_set()

    # -- observing -------------------------------------------------------------------------------------
    def _start_observer(self) -> None:
        from watchdog.observers import Observer

        from workbench.versioning.watch.filter import EVENT_TYPES

        _install_overflow_handler()
        _overflow_listeners.add(self)
        try:
            if self._observer_factory is not None:
                observer = self._observer_factory()
            else:
                from workbench.versioning.watch.inotify import make_observer

                observer = make_observer(self._skip_folder, self._is_store) or Observer()
            observer.schedule(_Handler(self), str(self.project.root), recursive=True,
                              event_filter=EVENT_TYPES)
            observer.start()
        except OSError as exc:
            _overflow_listeners.discard(self)
            self._fall_back(f"cannot watch the folder ({exc.strerror or exc})")
            return
        self._writes_end_with_close = reports_closes(observer)
        self._observer = observer

    def _skip_folder(self, path: bytes) -> bool:
        """Whether a folder needs no inotify watch: ignored, or the store (called by the observer)."""
        flt = self._filter
        rel = flt.relative(path) if flt is not None else None
        return rel is not None and flt is not None and flt.excluded(rel, is_dir=True)

    def _is_store(self, path: bytes) -> bool:
        """The store folder itself gets a watch of its own (not its subfolders): status cookies."""
        flt = self._filter
        return flt is not None and flt.relative(path) == STORE_DIRNAME

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            with contextlib.suppress(Exception):
                observer.stop()
                observer.join(5)

    def _fall_back(self, why: str) -> None:
        self.mode = "polling"
        self._lock.update(mode="polling")
        if self._tracker is not None:
            self._tracker.distrust("polling")
        self._emit("fallback", f"{why}: rescanning every {self.rescan_seconds:g} s instead")

    def _on_overflow(self) -> None:
        if self._tracker is not None:
            self._tracker.distrust("events were lost (queue overflow)")
        self._debouncer.add((), full=True)
        if not self._overflowed:
            self._overflowed = True
            self._emit("overflow", "the OS event queue overflowed and events were lost: "
                       "rescanning the whole folder (and after any further overflow)")

    def _on_fs_event(self, event: FileSystemEvent) -> None:
        flt = self._filter
        if flt is None or self._stopping.is_set():
            return
        tracker = self._tracker
        rel = flt.relative(event.src_path)
        cookie = is_cookie(rel) if rel else None
        if cookie is not None:
            if tracker is not None and not event.is_directory and event.event_type == "created":
                tracker.cookie(cookie)
            return
        ends = [event.src_path]
        if getattr(event, "dest_path", ""):
            ends.append(event.dest_path)
        if any(flt.relative(end) == ".workbenchignore" for end in ends):
            if event.event_type == "modified" and self._writes_end_with_close:
                return  # a write in progress (truncated, half written): acted on when it is closed
            if not flt.rules_changed():
                return  # the rules already in force: a second event of one write, or a touch
            if tracker is not None:
                tracker.distrust("ignore rules changed")
            try:
                flt.reload()
            except WorkbenchError as exc:
                self._emit("error", f"ignore rules not reloaded: {exc.one_line()}")
            else:
                observer = self._observer
                if observer is not None:
                    from workbench.versioning.watch.inotify import rewatch

                    with contextlib.suppress(Exception):
                        rewatch(observer)  # watch newly un-ignored folders, drop newly ignored ones
                self._emit("ignore-reloaded", ".workbenchignore changed: rules reloaded, rescanning")
            self._debouncer.add((".workbenchignore",), full=True)
            return
        paths = list(flt.paths(event))
        if paths:
            if tracker is not None:
                tracker.add(paths)
            self._debouncer.add(paths)

    # -- snapshotting ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        failures = 0
        next_poll = time.monotonic() + self.rescan_seconds
        while True:
            if self._stopping.is_set():
                if self._flush_on_stop:
                    self._debouncer.request_now()
                    batch = self._debouncer.take()
                    if batch is not None:
                        self._snapshot(batch)
                break
            timeout = max(0.0, next_poll - time.monotonic()) if self.mode == "polling" else None
            batch = self._debouncer.wait(timeout)
            if batch is None:
                if self.mode == "polling" and not self._stopping.is_set():
                    batch = Batch(full=True, reason="poll")
                else:
                    continue
            if self.mode == "polling":
                next_poll = time.monotonic() + self.rescan_seconds
            if self._snapshot(batch):
                failures = 0
            else:
                failures += 1
                self._stopping.wait(min(_MAX_BACKOFF_SECONDS, self.quiet * 2 ** failures))
        self._emit("stopped", f"stopped watching after {self.snapshots} snapshot(s)")

    def _snapshot(self, batch: Batch) -> bool:
        """Take one snapshot for ``batch``; on failure put the batch back. Returns success."""
        self._busy.set()
        taken_at = self._tracker.mark() if self._tracker is not None else 0
        try:
            if batch.reason in ("cap", "quiet"):
                self._hold_recent(batch)
            paths = sorted(batch.paths)
            extra: dict[str, Any] = {"hold": sorted(batch.held)} if batch.held and self._hold else {}
            info = self.versions.snapshot(
                _message(batch, paths), kind="auto", changed_paths=None if batch.full else paths, **extra,
            )
        except Exception as exc:  # the watcher must outlive any one failure
            text = exc.one_line() if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
            self.last_error = text
            self._lock.update(last_error=text)
            self._debouncer.add(batch.paths, full=batch.full)
            self._emit("error", f"snapshot failed, will retry: {text}")
            return False
        finally:
            self._busy.clear()
            self._debouncer.done()
        unstable = _unstable_paths(info)
        if self._tracker is not None and self.mode == "events":
            self._tracker.committed(str(info.id), taken_at, batch.paths, full=batch.full,
                                    keep=(*batch.held, *unstable))
        if unstable:
            self._debouncer.add(unstable)
            self._emit("retry", f"{len(unstable)} file(s) changed while being read; retrying after "
                       f"{self.quiet:g} s quiet", paths=unstable)
        secrets = _secret_skips(info)
        if secrets:
            self._emit("secret", "left out, looks like a secret: " + "; ".join(
                f"{path} ({reason})" for path, reason in secrets), paths=tuple(p for p, _ in secrets))
        if getattr(info, "created", True):
            self.snapshots += 1
            self.last_snapshot = str(info.id)
            recorded = getattr(info, "changed_paths", None) or paths
            self._lock.update(snapshots=self.snapshots, last_snapshot=self.last_snapshot,
                              last_snapshot_at=time.time(), last_error=None)
            self._emit("snapshot", str(getattr(info, "message", "") or _message(batch, paths)),
                       snapshot_id=self.last_snapshot, paths=tuple(recorded))
            self._maybe_prune()
        return True

    def _hold_recent(self, batch: Batch) -> None:
        """Hold files modified within the quiet interval: at the cap, and when a "quiet" batch was only
        quiet in event arrival (watchdog's inotify buffer delivers events in bursts, up to 0.5 s late)."""
        now = time.time()
        root = self.project.root
        recent = set()
        for path in batch.paths:
            try:
                mtime = (root / path).lstat().st_mtime
            except OSError:
                continue
            # A future mtime (an archive's, clock skew) is not "being written": it would be held forever.
            if -_CLOCK_SLACK_SECONDS < now - mtime < self.quiet:
                recent.add(path)
        if recent:
            batch.paths -= recent
            batch.held |= recent
            self._debouncer.add(recent)

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if not self.retention.enabled or now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = now
        try:
            report = self.prune()
        except Exception as exc:
            self._emit("error", f"retention failed: {exc}")
            return
        if report.dropped:
            self._emit("pruned", f"retention '{report.rule}' thinned {len(report.dropped)} auto snapshot(s)",
                       paths=tuple(report.dropped))

    def prune(self, *, dry_run: bool = False) -> PruneReport:
        """Apply the retention rule now."""
        head = head_snapshot_id(self.project.paths.store_dir)
        return prune_auto(self.project.db, self.retention, dry_run=dry_run,
                          keep=frozenset({head} if head else ()))

    def _emit(self, kind: str, message: str, *, snapshot_id: str | None = None,
              paths: tuple[str, ...] = ()) -> None:
        if self.on_event is None:
            return
        with contextlib.suppress(Exception):
            self.on_event(WatchEvent(kind, message, snapshot_id=snapshot_id, paths=paths))


def _unstable_paths(info: Any) -> tuple[str, ...]:
    """Paths the store saw change while it read them (kept at their old version or left out)."""
    found = {str(path) for path, reason in getattr(info, "skipped", ()) or ()
             if str(reason).startswith("changed while")}
    return tuple(sorted(found))


def _secret_skips(info: Any) -> list[tuple[str, str]]:
    """Files the snapshot left out because their content looks like a credential."""
    from workbench.versioning.secrets import is_secret_reason

    return [(str(path), str(reason)) for path, reason in getattr(info, "skipped", ()) or ()
            if is_secret_reason(str(reason))]


def _message(batch: Batch, paths: list[str]) -> str:
    if batch.full and not paths:
        return {"now": "auto: catch-up rescan", "poll": "auto: periodic rescan"}.get(
            batch.reason, "auto: full rescan")
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    return f"auto: {shown}"


class _Handler(FileSystemEventHandler):
    """Forwards every watchdog event to its watcher (on watchdog's dispatch thread)."""

    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._watcher._on_fs_event(event)
