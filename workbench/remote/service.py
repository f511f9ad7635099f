"""``ws.remote``: configured remotes, push and pull (clone, which makes a new project, is
workbench/core/clone.py, above this package).

Remotes are rows of the project database (name, URL, optional endpoint and region, which one is the
default); credentials are never stored: they are read from the standard AWS sources at each use.
"""

from __future__ import annotations

import builtins
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import UnknownIdError, UsageError
from workbench.remote.transport import RemoteError, RemoteSpec, open_transport, parse_url

if TYPE_CHECKING:
    from workbench.project import Project
    from workbench.remote.sync import Progress, PullReport, PushReport
    from workbench.versioning.service import VersioningService
    from workbench.versioning.versioned import JobTarget

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    url: str
    endpoint_url: str
    region: str
    is_default: bool

    @property
    def spec(self) -> RemoteSpec:
        return RemoteSpec(self.url, self.endpoint_url, self.region)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "endpoint_url": self.endpoint_url,
                "region": self.region, "default": self.is_default}


class RemoteService:
    """The remotes of one project."""

    def __init__(self, project: Project, *, versions: VersioningService) -> None:
        """``versions``: the blob store and trees that push reads and pull fills."""
        from workbench.versioning.versioned import VersionedProject

        self.project = project
        self.versions = versions
        self._versioned = VersionedProject(project, versions)

    # -- configuration ------------------------------------------------------------------------
    def add(self, name: str, url: str, *, endpoint_url: str = "", region: str = "",
            default: bool | None = None) -> RemoteInfo:
        """Add a remote; the first one added becomes the default (or ``default=True``)."""
        if not _NAME.match(name):
            raise UsageError(f"bad remote name {name!r}",
                             "use letters, digits, '.', '_' or '-', starting with a letter or digit")
        normalised = parse_url(url)
        if endpoint_url and not re.match(r"^https?://", endpoint_url):
            raise UsageError(f"bad endpoint URL {endpoint_url!r}", "write it as http://HOST:PORT or https://HOST")
        if endpoint_url and normalised.startswith("file://"):
            raise UsageError("--endpoint-url applies to s3:// remotes only", "drop it for a file:// remote")
        with self.project.atomic() as db:
            if db.execute("SELECT 1 FROM remotes WHERE name = ?", (name,)).fetchone():
                raise UsageError(f"a remote named {name!r} exists already",
                                 f"remove it first: workbench remote remove {name}")
            first = db.execute("SELECT COUNT(*) FROM remotes").fetchone()[0] == 0
            make_default = first if default is None else default
            if make_default:
                db.execute("UPDATE remotes SET is_default = 0")
            db.execute("INSERT INTO remotes (name, url, endpoint_url, region, is_default, created_at)"
                       " VALUES (?, ?, ?, ?, ?, ?)",
                       (name, normalised, endpoint_url.rstrip("/"), region, int(make_default), time.time()))
        return self.get(name)

    def list(self) -> list[RemoteInfo]:
        return [RemoteInfo(n, u, e, r, bool(d)) for n, u, e, r, d in self.project.db.execute(
            "SELECT name, url, endpoint_url, region, is_default FROM remotes ORDER BY name")]

    def get(self, name: str | None = None) -> RemoteInfo:
        """The remote called ``name``, or the default one."""
        remotes = self.list()
        if name is None:
            found = next((r for r in remotes if r.is_default), None)
            if found is None:
                raise UsageError("no default remote" if remotes else "no remote is configured",
                                 "add one: workbench remote add NAME s3://BUCKET/PREFIX"
                                 if not remotes else "name one, or: workbench remote default NAME")
            return found
        found = next((r for r in remotes if r.name == name), None)
        if found is None:
            raise UnknownIdError(f"no remote named {name!r}", "see 'workbench remote list'")
        return found

    def remove(self, name: str) -> None:
        info = self.get(name)
        with self.project.atomic() as db:
            db.execute("DELETE FROM remotes WHERE name = ?", (info.name,))

    def set_default(self, name: str) -> RemoteInfo:
        info = self.get(name)
        with self.project.atomic() as db:
            db.execute("UPDATE remotes SET is_default = (name = ?)", (info.name,))
        return self.get(name)

    # -- transfers ----------------------------------------------------------------------------
    def push(self, name: str | None = None, *, progress: Progress | None = None,
             cancel: threading.Event | None = None) -> PushReport:
        """Send every object and record the remote does not have yet."""
        from workbench.remote.sync import Pusher

        info = self.get(name)
        return Pusher(self._versioned, info.spec, open_transport(info.spec), progress, cancel).run()

    def pull(self, name: str | None = None, *, progress: Progress | None = None,
             cancel: threading.Event | None = None, metadata_only: bool = False) -> PullReport:
        """Fetch and merge what others pushed. ``metadata_only``: records and directory trees now, file
        contents when something reads them (:meth:`fetch_object`)."""
        from workbench.remote.sync import Puller

        info = self.get(name)
        report = Puller(self._versioned, info.spec, open_transport(info.spec), info.name, progress,
                        cancel, metadata_only).run()
        self._checked(info.spec.key, 0)
        return report

    def _checked(self, key: str, behind: int) -> None:
        with self.project.atomic() as db:
            db.execute("INSERT OR REPLACE INTO remote_checks (remote_key, checked_at, behind)"
                       " VALUES (?, ?, ?)", (key, time.time(), behind))

    def summary(self) -> dict[str, Any] | None:
        """Ahead/behind against the default remote from local bookkeeping only (no network):
        ``{name, ahead, behind, checked_at}``; ``behind`` and ``checked_at`` are those of the last
        pull or ``remote status`` (None before either). None when no default remote is set."""
        from workbench.remote.sync import Pusher

        info = next((r for r in self.list() if r.is_default), None)
        if info is None:
            return None
        ahead = sum(1 for _ in Pusher(self._versioned, info.spec, open_transport(info.spec)).pending())
        row = self.project.db.execute("SELECT checked_at, behind FROM remote_checks WHERE remote_key = ?",
                                      (info.spec.key,)).fetchone()
        return {"name": info.name, "ahead": ahead, "behind": None if row is None else int(row[1]),
                "checked_at": None if row is None else float(row[0])}

    def status(self, name: str | None = None) -> dict[str, Any]:
        """Ahead/behind: records a push would send (by kind; no server contacted for that) and
        bundles on the remote not merged here (one listing)."""
        from workbench.remote.sync import Puller, Pusher

        info = self.get(name)
        transport = open_transport(info.spec)
        ahead: dict[str, int] = {}
        for kind, _, _ in Pusher(self._versioned, info.spec, transport).pending():
            ahead[kind] = ahead.get(kind, 0) + 1
        behind = len(Puller(self._versioned, info.spec, transport, info.name).new_bundles())
        self._checked(info.spec.key, behind)
        return {"remote": info.name, "url": info.url, "ahead": ahead, "behind_bundles": behind}

    def holder(self, digest: str, snapshot: str = "") -> str | None:
        """The name of a remote known (from local bookkeeping, no network) to hold an object: it was
        pushed or pulled there, or the snapshot using it was; the default remote first."""
        db = self.project.db
        for info in sorted(self.list(), key=lambda r: not r.is_default):
            key = info.spec.key
            has_object = db.execute("SELECT 1 FROM remote_objects WHERE remote_key = ? AND hash = ?",
                                    (key, digest)).fetchone()
            has_snapshot = snapshot and db.execute(
                "SELECT 1 FROM remote_snapshots WHERE remote_key = ? AND snapshot_id = ?", (key, snapshot)
            ).fetchone()
            if has_object or has_snapshot:
                return info.name
        return None

    def fetch_object(self, digest: str) -> bool:
        """Fetch one object missing from the cache from the first remote that has it (default first);
        False when none has it (or none is configured). Called by the blob cache on a miss."""
        from workbench.remote.sync import fetch_one

        remotes = sorted(self.list(), key=lambda r: not r.is_default)
        store = self.versions.store
        return any(fetch_one(store, open_transport(r.spec), digest) for r in remotes)

    # -- container jobs that read and write the remote themselves (executors/remote_inputs.py) -------
    # These four methods are the JobRemote interface (workbench/versioning/versioned.py) the
    # Workspace hands the executors, which sit below this package and never import it.
    def default_target(self, schemes: tuple[str, ...]) -> JobTarget | None:
        """The default remote when its scheme is one of ``schemes`` (a cluster cannot read this
        host's folders), else None."""
        from workbench.versioning.versioned import JobTarget

        info = next((r for r in self.list() if r.is_default), None)
        if info is None or info.spec.scheme not in schemes:
            return None
        return JobTarget(info.name, info.url, info.endpoint_url, info.region)

    def push_for_job(self, target: JobTarget, snapshot: str) -> str:
        """Send the objects of ``snapshot`` the remote lacks (no bundle) for a job that fetches them
        itself; returns the snapshot's root tree."""
        from workbench.remote.jobinputs import push_snapshot

        return push_snapshot(self._versioned, _spec(target), snapshot)[0]

    def job_outputs(self, target: JobTarget, run_id: str, dest: Path) -> builtins.list[str] | None:
        """The files a job pushed to ``target``, fetched (verified) and written into ``dest``."""
        from workbench.remote.jobinputs import fetch_outputs

        return fetch_outputs(self._versioned, _spec(target), run_id, dest)

    def job_credentials(self, target: JobTarget) -> dict[str, str]:
        """The standard AWS variables for a job reaching ``target``, read now from this host's sources
        (environment, then profile files) and never stored; empty for a ``file://`` remote."""
        where = _spec(target)
        if where.scheme != "s3":
            return {}
        from workbench.remote.transport import aws_settings

        names = {"access_key_id": "AWS_ACCESS_KEY_ID", "secret_access_key": "AWS_SECRET_ACCESS_KEY",
                 "token": "AWS_SESSION_TOKEN", "endpoint": "AWS_ENDPOINT_URL", "region": "AWS_REGION"}
        settings = aws_settings(where.region, where.endpoint_url)
        return {names[k]: v for k, v in settings.items() if k in names}


def _spec(target: JobTarget) -> RemoteSpec:
    return RemoteSpec(target.url, target.endpoint_url, target.region)


__all__ = ["RemoteError", "RemoteInfo", "RemoteService"]
