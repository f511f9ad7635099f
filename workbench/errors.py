"""Errors that reach the user: each carries a one-line message and, where one exists, the fix.

The CLI catches :class:`WorkbenchError`, prints ``error: MESSAGE (hint: FIX)`` on one line and exits
with :attr:`WorkbenchError.exit_code` (2 unless a subclass says otherwise). Nothing else in the
product prints tracebacks at a user.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class for every error that is meant for a user's eyes."""

    exit_code: int = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and hint folded into a single line."""
        text = " ".join(self.message.split())
        if self.hint:
            text += f" ({' '.join(self.hint.split())})"
        return text


class NotAProjectError(WorkbenchError):
    """The current directory (and none of its parents) holds a ``.workbench/`` folder."""


class UnknownIdError(WorkbenchError):
    """An id or name that matches nothing."""


class AmbiguousIdError(WorkbenchError):
    """A short id that matches more than one object."""


class CorruptObjectError(WorkbenchError):
    """A stored object whose content no longer matches its address."""


class MissingObjectError(WorkbenchError):
    """A stored object that is referenced but absent from the blob cache."""


class UnsafePathError(WorkbenchError):
    """A path that would escape the project (``..``, absolute, or through a symlink)."""


class ConfigError(WorkbenchError):
    """A malformed project or user configuration file."""


class BusyError(WorkbenchError):
    """A resource held by another process (a lock, a watcher)."""


class ExecutorError(WorkbenchError):
    """A run could not be launched or followed on its executor."""


class DeployError(WorkbenchError):
    """A deployment could not be created, changed or observed."""


class UsageError(WorkbenchError):
    """Arguments that do not make sense together."""
