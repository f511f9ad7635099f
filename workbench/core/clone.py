"""Clone: a new project from a remote, above the services (it builds a Workspace).

It lives beside the facade, not in ``workbench.remote``, because it creates a whole project and
drives several services (remote, versioning); the remote package itself never imports the
Workspace. ``workbench clone`` calls it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from workbench.core.workspace import Workspace
from workbench.errors import UsageError, WorkbenchError
from workbench.remote.transport import RemoteSpec, open_transport, parse_url

if TYPE_CHECKING:
    from workbench.remote.sync import Progress, PullReport


def clone(url: str, dest: Path, *, endpoint_url: str = "", region: str = "", name: str = "origin",
          progress: Progress | None = None, checkout: bool = True, metadata_only: bool = False
          ) -> tuple[Workspace, PullReport, str | None]:
    """A new project in ``dest`` from a remote: add it as the default, pull, restore the newest snapshot
    (``metadata_only``: no file contents are fetched and nothing is restored; ``workbench restore``
    then fetches what it needs).

    Returns the workspace, the pull report and the snapshot restored (None when there is none). The
    remote is checked before ``dest`` is touched, so a wrong URL or credentials leave nothing behind.
    """
    spec = RemoteSpec(parse_url(url), endpoint_url.rstrip("/"), region)
    open_transport(spec).check()
    dest = dest.expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} exists and is not an empty folder", "clone into a new or empty folder")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkbenchError(f"cannot create {dest}: {exc.strerror}", "check the path") from None
    ws, _ = Workspace.init(dest)
    ws.remote.add(name, spec.url, endpoint_url=spec.endpoint_url, region=region, default=True)
    report = ws.remote.pull(name, progress=progress, metadata_only=metadata_only)
    restored: str | None = None
    latest = ws.versions.latest()
    if checkout and not metadata_only and latest is not None:
        ws.versions.restore(latest.id, force=True, safety=False)
        restored = latest.id
    return ws, report, restored


__all__ = ["clone"]
