"""An inotify observer that watches only the folders a snapshot would look at.

watchdog's recursive inotify observer puts a watch on every folder below the root: ``.workbench``
(256 fan-out folders of the blob cache), ``.venv``, ``node_modules``, ``.git``... each one a kernel
watch (a limited resource, ``fs.inotify.max_user_watches``) and a source of events that are only
filtered out afterwards. This observer prunes ignored folders while it adds watches, when a folder
is created or moved in, and when it rebuilds after a queue overflow; :func:`rewatch` re-applies the
rules after ``.workbenchignore`` changed (a newly un-ignored folder gets its watches).

It hooks into watchdog 7's ``InotifyWatchGroup``; with another watchdog (or platform) it returns
None and the caller uses watchdog's own observer (every folder watched, events filtered later).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

Skip = Callable[[bytes], bool]
"""absolute folder path (bytes) -> do not watch it (nor anything below it)"""


def make_observer(skip: Skip, shallow: Skip | None = None) -> BaseObserver | None:
    """A started-able observer that never watches folders ``skip`` accepts, or None if unsupported.

    ``shallow``: skipped folders that still get a watch of their own (events for the entries directly
    in them, nothing below): the store folder, where ``status`` leaves its cookies."""
    try:
        from watchdog.observers import inotify
    except ImportError:  # not Linux
        return None
    group_cls: Any = getattr(inotify, "InotifyWatchGroup", None)
    if group_cls is None or not hasattr(group_cls, "_add_all_callbacks") or not hasattr(
            group_cls, "_recursive_simulate"):
        return None

    class Group(group_cls):  # type: ignore[misc]
        def _add_all_callbacks(self, path: bytes) -> None:
            if path != self.path and skip(path):
                return
            is_dir = os.path.isdir(path)
            self._add_callback(path)
            if not (is_dir and self.is_recursive):
                return
            for root, dirnames, _ in os.walk(path):
                keep = []
                for name in dirnames:
                    full = os.path.join(root, name)
                    if os.path.islink(full):
                        continue
                    if skip(full):
                        if shallow is not None and shallow(full):
                            self._add_callback(full)
                        continue
                    self._add_callback(full)
                    keep.append(name)
                dirnames[:] = keep

        def _recursive_simulate(self, src_path: bytes) -> list[Any]:
            if skip(src_path):
                return []
            result: list[Any] = super()._recursive_simulate(src_path)
            return result

    class Emitter(inotify.InotifyEmitter):
        def on_thread_start(self) -> None:
            self._inotify = Group(
                self._inotify_fd, os.fsencode(self.watch.path), is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(), follow_symlink=False,
            )

    class Observer(inotify.InotifyObserver):
        def __init__(self) -> None:
            from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
            from watchdog.observers.inotify_c import InotifyFD

            self._inotify_fd = InotifyFD()
            self._inotify_fd.start()
            BaseObserver.__init__(self, Emitter, timeout=DEFAULT_OBSERVER_TIMEOUT,
                                  inotify_fd=self._inotify_fd)

    return Observer()


def rewatch(observer: BaseObserver) -> bool:
    """Rebuild the watches of ``observer`` with the current rules. False if it cannot (not ours)."""
    done = False
    for emitter in list(observer.emitters):
        group = getattr(emitter, "_inotify", None)
        if group is None or not hasattr(group, "_active_callbacks_by_watch"):
            continue
        with group._lock:
            if not group.is_active:
                continue
            group._remove_callbacks(list(group._active_callbacks_by_watch))
            group._add_all_callbacks(group.path)
        done = True
    return done


def watch_count(pid: int | None = None) -> int:
    """Inotify watches held by a process (Linux ``/proc``; 0 where that cannot be read)."""
    base = f"/proc/{pid or os.getpid()}/fdinfo"
    total = 0
    try:
        names = os.listdir(base)
    except OSError:
        return 0
    for name in names:
        try:
            with open(os.path.join(base, name), encoding="ascii", errors="replace") as handle:
                total += sum(1 for line in handle if line.startswith("inotify wd:"))
        except OSError:
            continue
    return total
