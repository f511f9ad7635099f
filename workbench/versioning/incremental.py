"""Incremental snapshots: rescan only the paths a watcher saw change, carry the rest over from HEAD.

``snapshot(changed_paths=[...])`` promises that nothing outside those paths (files or folders,
deleted and moved-away ones included) differs from the snapshot the folder was last synchronised
with (HEAD). So only each hinted path is looked at: a file is stat-ed (and read if its stat moved),
a folder is walked, a missing or newly ignored path is removed; then the HEAD tree is patched from
the changed entries up to the root, rewriting just the folders on the way. A one-file edit in a
100,000-file project costs reading that file and a handful of tree objects.

A hint is widened to its highest ancestor that HEAD does not hold as a folder, that is no longer a
folder on disk, or that is ignored now: a file in a new folder makes the new folder the unit to scan,
and a file in a deleted folder removes the folder. :func:`patch_tree` and :func:`hold_back` also put
back the HEAD entries of paths the caller holds (files still being written).
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from workbench.versioning.ignore import sniff_exempt
from workbench.versioning.state import StatIndex, trusted_hash
from workbench.versioning.trees import DIR, FILE, LINK, Item, TreeReader, Trees, encode_tree, tree_hash
from workbench.versioning.worktree import WorkTree, _Dir, _ingest_all, scan

if TYPE_CHECKING:
    from workbench.versioning.blobs import BlobStore
    from workbench.versioning.ignore import IgnoreRules

Progress = Callable[[int, int], None]
Changes = dict[str, Item | None]
"""path -> its new entry (its name is the last part of the path), or None: remove it"""


class Lookup:
    """Entries of stored (or in-memory) trees by path, with each folder's listing indexed once."""

    def __init__(self, reader: TreeReader) -> None:
        self.reader = reader
        self._maps: dict[str, dict[str, Item]] = {}

    def child(self, tree: str, name: str) -> Item | None:
        found = self._maps.get(tree)
        if found is None:
            found = self._maps[tree] = {it[0]: it for it in self.reader.items(tree)}
        return found.get(name)

    def find(self, root: str, path: str) -> Item | None:
        """The entry at ``path`` in tree ``root`` ("" is the root itself), or None."""
        if not path:
            return ("", DIR, 0, 0, root)
        current: Item | None = None
        tree = root
        for part in path.split("/"):
            if current is not None:
                if current[1] != DIR:
                    return None
                tree = current[4]
            current = self.child(tree, part)
            if current is None:
                return None
        return current

    def count(self, item: Item | None) -> int:
        """Files and links in an entry (a folder counts what is below it)."""
        if item is None:
            return 0
        if item[1] != DIR:
            return 1
        return sum(1 for _ in self.reader.walk(item[4]))


def _under(path: str, folders: frozenset[str]) -> bool:
    while path:
        if path in folders:
            return True
        path = path.rpartition("/")[0]
    return False


def targets(root: str, rules: IgnoreRules, lookup: Lookup, base: str, hints: Iterable[str],
            hold: frozenset[str] = frozenset()) -> list[str] | None:
    """The paths to rescan for ``hints`` (widened, de-duplicated), or None: rescan everything."""
    is_dir: dict[str, bool] = {}

    def still_dir(rel: str) -> bool:
        found = is_dir.get(rel)
        if found is None:
            item = lookup.find(base, rel)
            try:
                on_disk = stat_mod.S_ISDIR(os.lstat(os.path.join(root, rel)).st_mode)
            except OSError:
                on_disk = False
            found = is_dir[rel] = (item is not None and item[1] == DIR and on_disk
                                   and not rules.ignored(rel, rel.rpartition("/")[2], True))
        return found

    wanted: set[str] = set()
    for hint in hints:
        rel = "/".join(p for p in hint.strip("/").split("/") if p and p != ".")
        if not rel:
            return None
        parts = rel.split("/")
        target = rel
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if not still_dir(folder):
                target = folder
                break
        wanted.add(target)
    ordered = sorted(wanted)
    chosen = frozenset(ordered)
    return [t for t in ordered
            if not _under(t.rpartition("/")[0], chosen) and not _under(t, hold)]


def incremental_scan(root: str, rules: IgnoreRules, index: StatIndex, store: BlobStore | None,
                     reader: TreeReader, base: str, base_files: int, hints: Iterable[str], *,
                     threshold: int, force: frozenset[str] = frozenset(),
                     hold: frozenset[str] = frozenset(), progress: Progress | None = None) -> WorkTree | None:
    """The HEAD tree ``base`` with the hinted paths rescanned (and stored, given a ``store``; without
    one nothing is written: ``status``), or None: scan everything."""
    lookup = Lookup(reader)
    chosen = targets(root, rules, lookup, base, hints, hold)
    if chosen is None:
        return None
    result = WorkTree(base, Trees(), base_files, 0)
    changes: Changes = {}
    parents: dict[str, _Dir] = {}
    todo: list[tuple[str, _Dir, str]] = []
    gone: list[str] = []
    for rel in chosen:
        parent_rel, _, name = rel.rpartition("/")
        try:
            st = os.lstat(os.path.join(root, rel))
        except (FileNotFoundError, NotADirectoryError):
            changes[rel] = None
            gone.append(rel)
            continue
        mode = st.st_mode
        if rules.ignored(rel, name, stat_mod.S_ISDIR(mode)):
            changes[rel] = None
            gone.append(rel)
        elif stat_mod.S_ISDIR(mode):
            sub = scan(root, rules, index, store, threshold=threshold, force=force, progress=progress,
                       start=rel, hold=hold)
            result.trees.merge(sub.trees)
            result.skipped.extend(sub.skipped)
            result.new_bytes += sub.new_bytes
            result.hashed += sub.hashed
            changes[rel] = (name, DIR, 0, sub.bytes, sub.root)
        elif stat_mod.S_ISLNK(mode):
            target = os.readlink(os.path.join(root, rel))
            changes[rel] = (name, LINK, 0, len(os.fsencode(target)), target)
        elif stat_mod.S_ISREG(mode):
            node = parents.get(parent_rel)
            if node is None:
                node = parents[parent_rel] = _Dir(parent_rel)
            raw = None if rel in force else index.entries.get(rel)
            digest = None if raw is None else trusted_hash(raw, st.st_size, st.st_mtime_ns, st.st_ino,
                                                            st.st_ctime_ns)
            if digest is not None and store is not None and not store.has(digest):
                digest = None
            node.files[name] = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, mode & 0o777, digest]
            if digest is None:
                todo.append((rel, node, name))
        else:
            changes[rel] = None
            gone.append(rel)
            result.skipped.append((rel, "not a regular file (FIFO, socket or device)"))
    if todo:
        _ingest_all(root, todo, store, index, threshold, progress, 0, result, sniff_exempt(rules))
    for parent_rel, node in parents.items():
        for name, f in node.files.items():
            changes[f"{parent_rel}/{name}" if parent_rel else name] = (
                name, FILE, int(f[4]), int(f[0]), str(f[5]))  # type: ignore[call-overload]
    for rel, node, name in todo:
        if name not in node.files:
            changes[rel] = None  # vanished, or changed while being read with no previous version
    _forget(index, gone)
    reader.add(result.trees)
    for rel, item in changes.items():
        result.files += lookup.count(item) - lookup.count(lookup.find(base, rel))
    result.root, result.bytes, written = patch_tree(lookup, store, base, changes, result.trees)
    result.new_bytes += written
    return result


def hold_back(root: str, reader: TreeReader, store: BlobStore, tree: WorkTree, head: str,
              hold: frozenset[str]) -> None:
    """Put the HEAD entries of the held paths back into ``tree`` (leaving out those HEAD lacks)."""
    reader.add(tree.trees)
    lookup = Lookup(reader)
    changes: Changes = {}
    for rel in sorted(hold):
        parent = rel.rpartition("/")[0]
        if parent:
            holder = lookup.find(tree.root, parent)
            if holder is None or holder[1] != DIR:
                continue  # its folder is gone: nothing to hold
        old, new = lookup.find(head, rel), lookup.find(tree.root, rel)
        if old != new:
            changes[rel] = old
            tree.files += lookup.count(old) - lookup.count(new)
        if old is not None:
            tree.skipped.append((rel, "still being written; kept its previous version"))
        elif os.path.lexists(os.path.join(root, rel)):
            tree.skipped.append((rel, "still being written; left out"))
    if changes:
        tree.root, tree.bytes, written = patch_tree(lookup, store, tree.root, changes, tree.trees)
        tree.new_bytes += written


def patch_tree(lookup: Lookup, store: BlobStore | None, base: str, changes: Changes,
               trees: dict[str, list[Item]]) -> tuple[str, int, int]:
    """Apply ``changes`` to tree ``base``: every folder on the way to the root is rewritten (and
    stored). The changed paths' parent folders must exist in ``base``. Returns (root, bytes, new bytes)."""
    levels: dict[int, dict[str, Changes]] = {}
    for path, item in changes.items():
        parent = path.rpartition("/")[0]
        levels.setdefault(parent.count("/") + 1 if parent else 0, {}).setdefault(parent, {})[path] = item
    written = 0
    for depth in range(max(levels, default=0), -1, -1):
        for folder, mods in levels.get(depth, {}).items():
            holder = lookup.find(base, folder)
            items = ({it[0]: it for it in lookup.reader.items(holder[4])}
                     if holder is not None and holder[1] == DIR else {})
            for path, item in mods.items():
                name = path.rpartition("/")[2]
                if item is None:
                    items.pop(name, None)
                else:
                    items[name] = (name, *item[1:])
            listing = list(items.values())
            data = encode_tree(listing)
            digest = tree_hash(data)
            total = sum(it[3] for it in listing if it[1] != LINK)
            trees[digest] = listing
            if store is not None and not store.has(digest):
                written += store.put_bytes(data, digest)[1]
            if depth == 0:
                return digest, total, written
            up = folder.rpartition("/")[0]
            levels.setdefault(depth - 1, {}).setdefault(up, {})[folder] = (
                folder.rpartition("/")[2], DIR, 0, total, digest)
    return base, sum(it[3] for it in lookup.reader.items(base) if it[1] != LINK), written


def _forget(index: StatIndex, gone: list[str]) -> None:
    """Drop stat-index entries at or below removed paths."""
    if not gone:
        return
    exact = set(gone)
    prefixes = tuple(g + "/" for g in gone)
    stale = [p for p in index.entries if p in exact or p.startswith(prefixes)]
    for p in stale:
        del index.entries[p]
    if stale:
        index.dirty = True
