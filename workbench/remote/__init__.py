"""Sharing a project through object storage: remotes, push, pull and clone (S3-compatible or file://).

No UI here: progress goes through callables. The Workspace builds :class:`RemoteService` as
``ws.remote``; see docs/remote.md for the layout on the remote and the merge rules.
"""
