"""Confine what a job in a folder of its own reports to that folder.

A Docker container or a cluster pod sees the project at its executor's ``workspace`` (e.g.
``/workspace``), so the paths in its events are paths there. :func:`relativise` makes each one
project-relative, or turns the event into a ``refused`` event the ingester records (docs/security.md),
before any event line of such a job reaches the ingester.
"""

from __future__ import annotations

import json

from workbench.tracking.events import EventError, decode
from workbench.versioning.safe_write import PROTECTED_DIRS


def relativise(payload: bytes, workspace: str) -> bytes:
    """Confine an event line of a remote job to that job's workspace.

    A ``path`` under ``workspace`` (the job's ``/workspace``) is made relative; a relative path is
    taken as relative to it. A path that is absolute elsewhere, holds ``..`` or NUL, names the
    workspace itself, or lies inside ``.workbench/`` or ``.git/`` is never passed on: the line becomes
    ``{"e":"refused","kind":...,"path":...,"reason":...}``, which the ingester records on the run
    (docs/security.md). The line is parsed exactly as the ingester parses it
    (:func:`workbench.tracking.events.decode`), so no spelling (escaped keys, duplicate keys, a second
    marker) gets a path past this check. Lines without a path are returned unchanged.
    """
    if b"path" not in payload and b"\\" not in payload:
        return payload  # a "path" key cannot be spelt without these bytes
    try:
        event = decode(payload)
    except EventError:
        return payload  # the ingester notes it as malformed
    if "path" not in event:
        return payload
    path = event["path"]
    if not isinstance(path, str):
        return _encode(event)  # the ingester refuses a non-string path itself
    rel, reason = confine_path(path, workspace)
    if reason:
        return _encode({"e": "refused", "kind": str(event.get("e"))[:40], "path": path[:1000],
                        "reason": reason})
    event["path"] = rel
    return _encode(event)


def confine_path(path: str, workspace: str) -> tuple[str, str]:
    """``(relative path, "")`` for a path inside the job's workspace, else ``("", reason)``."""
    prefix = workspace.rstrip("/") + "/"
    if "\x00" in path:
        return "", "the path holds a NUL byte"
    if path.startswith("/"):
        if path.rstrip("/") == prefix[:-1]:
            return "", "names the workspace itself, not a file"
        if not path.startswith(prefix):
            return "", f"outside the job's workspace ({workspace})"
        path = path[len(prefix):]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "", "'..' is not allowed in a job's paths"
    if not parts:
        return "", "names the workspace itself, not a file"
    for part in parts:
        if part.casefold() in PROTECTED_DIRS:
            return "", f"inside {part}/ (a job may not name files there)"
    return "/".join(parts), ""


def _encode(event: dict[str, object]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=True).encode()
