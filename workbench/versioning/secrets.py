"""Content sniffing: files whose first KiB looks like a credential are left out of snapshots.

Like git-secrets, but for the snapshot path: when a file is (re)hashed, the first :data:`HEAD_BYTES`
of the bytes already read are searched for a PEM private key header, an AWS access key id or a GCP
service-account key. A hit raises :class:`LooksLikeSecret` before anything is stored; the scanner
leaves the file out and reports it in ``SnapshotInfo.skipped`` with :func:`skip_reason`. A file the
stat index vouches for is never read, so it is never sniffed either: the cost is a few substring
tests per file read (microseconds), nothing per unchanged file. Such a file is not put in the stat
index (even when ``!path`` in ``.workbenchignore`` keeps it), so every scan looks at it again: it is
reported until removed or re-included, and dropping the ``!path`` takes effect at once. The stat
index's version was raised with this check, so files indexed before it are read once more.
"""

from __future__ import annotations

import re

HEAD_BYTES = 1024
_PEM = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_AWS = re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
_GCP = re.compile(rb'"type"\s*:\s*"service_account"')
PEM_KIND, AWS_KIND, GCP_KIND = "PEM private key", "AWS access key id", "GCP service-account key"


class LooksLikeSecret(Exception):
    """The file's first KiB holds a credential; ``kind`` says which (one of the ``*_KIND`` names)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def sniff(head: bytes) -> str | None:
    """The kind of credential found in ``head`` (only its first KiB is searched), or None."""
    # Plain substring tests first (a regex alternation tried at every position cost ten times more);
    # a pattern runs only where its marker is. A NUL byte (one memchr) means binary data: skipped.
    if len(head) > HEAD_BYTES:
        head = head[:HEAD_BYTES]
    if b"\0" in head:
        return None
    if b"PRIVATE KEY-----" in head and _PEM.search(head):
        return PEM_KIND
    if (b"AKIA" in head or b"ASIA" in head) and _AWS.search(head):
        return AWS_KIND
    if b"service_account" in head and _GCP.search(head):
        return GCP_KIND
    return None


def skip_reason(rel: str, kind: str) -> str:
    """The reason shown where skipped files are reported (``workbench snapshot``, the watcher log)."""
    return f"looks like a secret ({kind}); add '!{rel}' to .workbenchignore to version it"


def is_secret_reason(reason: str) -> bool:
    return reason.startswith("looks like a secret")
