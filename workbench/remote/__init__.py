"""Sharing a project through object storage: remotes, push and pull (S3-compatible or file://).

No UI here: progress goes through callables. The Workspace builds :class:`RemoteService` as
``ws.remote``, handing it the project and the versioning service; clone, which makes a new project,
is :mod:`workbench.core.clone`, above. See docs/remote.md for the layout on the remote and the
merge rules.
"""
