"""Content sniffing: files whose first KiB looks like a credential are left out of snapshots.

Like git-secrets, but for the snapshot path: when a file is (re)hashed, the first :data:`HEAD_BYTES`
of the bytes already read are searched for a PEM private key header, an AWS access key id or a GCP
service-account key. A hit raises :class:`LooksLikeSecret` before anything is stored; the scanner
leaves the file out and reports it in ``SnapshotInfo.skipped`` with :func:`skip_reason`. A file the
stat index vouches for is never read, so it is never sniffed either: the cost is one regex search over
1 KiB per file read (about a microsecond), nothing per unchanged file. Such a file is not put in the
stat index, so every scan looks at it again and reports it again until it is removed or re-included
with ``!path`` in ``.workbenchignore``.
"""

from __future__ import annotations

import re

HEAD_BYTES = 1024
_PATTERNS = re.compile(
    rb"(?P<pem>-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----)"
    rb"|(?P<aws>(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9]))"
    rb"|(?P<gcp>\"type\"\s*:\s*\"service_account\")"
)
KINDS = {"pem": "PEM private key", "aws": "AWS access key id", "gcp": "GCP service-account key"}


class LooksLikeSecret(Exception):
    """The file's first KiB holds a credential; ``kind`` says which (see :data:`KINDS`)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def sniff(head: bytes | memoryview) -> str | None:
    """The kind of credential found in ``head`` (only its first KiB is searched), or None."""
    found = _PATTERNS.search(head[:HEAD_BYTES])
    if found is None:
        return None
    return KINDS[str(found.lastgroup)]


def skip_reason(rel: str, kind: str) -> str:
    """The reason shown where skipped files are reported (``workbench snapshot``, the watcher log)."""
    return f"looks like a secret ({kind}); add '!{rel}' to .workbenchignore to version it"


def is_secret_reason(reason: str) -> bool:
    return reason.startswith("looks like a secret")
