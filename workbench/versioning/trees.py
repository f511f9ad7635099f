"""Directory tree objects: one content-addressed object per folder, like git trees.

A tree is a JSON list (ASCII, no spaces) of ``[name, type, mode, size, ref]`` sorted by name:
type ``f`` (ref = content hash), ``l`` (symlink; ref = its target), ``d`` (ref = the sub-tree's
hash; size = bytes below it). Names are the file system's names decoded with
``surrogateescape`` (``os.fsdecode``), so names that are not UTF-8, or that hold newlines, round-trip
byte for byte. An unchanged folder has the same hash in every snapshot, so it is stored once and a
diff skips it without reading it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import blake3

from workbench.errors import CorruptObjectError, UnsafePathError

if TYPE_CHECKING:
    from workbench.versioning.reports import FileEntry

Item = tuple[str, str, int, int, str]
"""(name, type, mode, size, ref)"""
FILE, LINK, DIR = "f", "l", "d"
EMPTY_TREE_BYTES = b"[]"
_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), check_circular=False)


def encode_tree(items: list[Item]) -> bytes:
    """Serialise a folder's entries (sorted here); the bytes whose BLAKE3 is the tree's address."""
    items.sort()
    return _encoder.encode(items).encode("ascii")


def tree_hash(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def check_name(name: str) -> None:
    """Refuse a tree entry name that could escape its folder."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UnsafePathError(
            f"unsafe name {name!r} in a stored tree", "the snapshot was tampered with; do not restore it"
        )


def decode_tree(digest: str, data: bytes) -> list[Item]:
    try:
        raw = json.loads(data)
        items: list[Item] = [(str(n), str(t), int(m), int(s), str(r)) for n, t, m, s, r in raw]
    except (ValueError, TypeError):
        raise CorruptObjectError(f"tree object {digest[:12]} is malformed", "run 'workbench fsck'") from None
    seen: set[str] = set()
    for item in items:
        check_name(item[0])
        if item[0] in seen or item[1] not in (FILE, LINK, DIR):
            raise CorruptObjectError(f"tree object {digest[:12]} is malformed", "run 'workbench fsck'")
        seen.add(item[0])
    return items


class Trees(dict[str, list[Item]]):
    """Tree objects by hash, plus ``lazy``: trees a scan knows by hash only (their hash came from the
    folder-hash cache, see :mod:`workbench.versioning.state`) with a function that builds their items
    when something (a diff descending into them) asks."""

    __slots__ = ("lazy",)

    def __init__(self) -> None:
        super().__init__()
        self.lazy: dict[str, Callable[[], list[Item]]] = {}

    def merge(self, other: dict[str, list[Item]]) -> None:
        self.update(other)
        if isinstance(other, Trees):
            self.lazy.update(other.lazy)


class TreeReader:
    """Reads tree objects (from memory first, then the blob cache), caching the parsed lists."""

    def __init__(self, load: Callable[[str], bytes], extra: dict[str, list[Item]] | None = None) -> None:
        self._load = load
        self._cache: dict[str, list[Item]] = dict(extra or {})
        self._lazy: dict[str, Callable[[], list[Item]]] = {}

    def add(self, trees: dict[str, list[Item]]) -> None:
        self._cache.update(trees)
        if isinstance(trees, Trees):
            self._lazy.update(trees.lazy)

    def items(self, digest: str) -> list[Item]:
        found = self._cache.get(digest)
        if found is None:
            build = self._lazy.pop(digest, None)
            found = self._cache[digest] = build() if build is not None else decode_tree(
                digest, self._load(digest))
        return found

    def walk(self, digest: str, prefix: str = "") -> Iterator[tuple[str, Item]]:
        """Every file and link below ``digest`` as (path, item), depth first, sorted."""
        for item in self.items(digest):
            path = prefix + item[0]
            if item[1] == DIR:
                yield from self.walk(item[4], path + "/")
            else:
                yield path, item

    def walk_all(self, digest: str, prefix: str = "") -> Iterator[tuple[str, Item]]:
        """Like :meth:`walk` but folders too (each before its content)."""
        for item in self.items(digest):
            path = prefix + item[0]
            yield path, item
            if item[1] == DIR:
                yield from self.walk_all(item[4], path + "/")

    def lookup(self, root: str, path: str) -> Item | None:
        """The entry at ``path`` (posix, project-relative) in the tree ``root``, or None."""
        parts = [p for p in path.strip("/").split("/") if p]
        if not parts:
            return ("", DIR, 0, 0, root)
        current = root
        for i, part in enumerate(parts):
            match = next((it for it in self.items(current) if it[0] == part), None)
            if match is None:
                return None
            if i == len(parts) - 1:
                return match
            if match[1] != DIR:
                return None
            current = match[4]
        return None


def file_entry(path: str, item: Item) -> FileEntry:
    from workbench.versioning.reports import FileEntry

    if item[1] == LINK:
        return FileEntry(path, "", item[3], 0, "link", item[4])
    return FileEntry(path, item[4], item[3], item[2], "file", None)
