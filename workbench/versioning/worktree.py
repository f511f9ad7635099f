"""Scanning the working folder into trees: walk, trust the stat index, hash (and store) the rest.

One pass serves ``status`` (hash only, nothing written to the cache) and ``snapshot`` (store missing
blobs and tree objects). Unchanged files are never read: their hash comes from the stat index.
With a store, a folder whose tree object already exists is known to be fully stored (a tree is only
written after everything below it), so its files are not even checked for presence.

Large files are read in a thread pool (their chunks are hashed and compressed on every core: BLAKE3,
zstd and file reads release the GIL) while this thread reads the small ones in batches, so a big
file overlaps with the many small ones; a scan that stores many files writes them into pack files
(:mod:`workbench.versioning.packs`). Each file read is also sniffed for credentials (see
:mod:`workbench.versioning.secrets`): one that looks like a secret is left out and reported in
``skipped`` (or kept, when ``.workbenchignore`` re-includes it by ``!path``), and is never put in the
stat index, so a later scan looks at it again.

A folder whose files the stat index all vouched for is looked up in the folder-hash cache by a
fingerprint of its entries (see :mod:`workbench.versioning.state`): on a match its tree hash is
reused and its tree object is neither built nor encoded (it is built only if a diff asks for it).
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import TYPE_CHECKING

import blake3

from workbench.errors import WorkbenchError
from workbench.host.cpus import cpu_budget
from workbench.versioning.ignore import SECRET_IN_FOLDER, IgnoreRules, default_ignored, sniff_exempt
from workbench.versioning.state import COARSE_MARGIN_NS, FINE_MARGIN_NS, NS, PACKED, StatIndex
from workbench.versioning.trees import DIR, FILE, LINK, Item, Trees, encode_tree, tree_hash

if TYPE_CHECKING:
    from workbench.versioning.blobs import BlobStore
    from workbench.versioning.chunking import Ingested
    from workbench.versioning.forked import ForkedIngest

Progress = Callable[[int, int], None]
RETRIES = 3
PACK_FROM_FILES = 64
BATCH_BYTES = 4 * 1024 * 1024
BATCH_FILES = 256
"""A scan with at least this many files to store writes its small objects into packs (one file per
thread instead of one per object); a scan with fewer keeps loose objects, as git keeps small pushes."""


class _Dir:
    """One scanned folder (a plain class: dataclasses cost start-up time that ``status`` must not pay)."""

    __slots__ = ("clean", "files", "links", "raws", "rel", "stat", "subdirs")

    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.stat: tuple[int, int, int, int] | None = None
        """(size, mtime_ns, ctime_ns, inode) of the folder, taken before it was listed (status seal)"""
        self.files: dict[str, list[object]] = {}
        """name -> [size, mtime_ns, ino, ctime_ns, mode, hash or None]"""
        self.links: dict[str, str] = {}
        self.subdirs: list[str] = []
        self.raws: list[bytes] = []
        """the stat-index entries that vouched for ``files``, in the same order (when ``clean``)"""
        self.clean = True
        """every file's hash came from the stat index and nothing was held or skipped"""


class WorkTree:
    """The working folder as trees (in memory; stored too when scanned with a store)."""

    __slots__ = ("bytes", "files", "hashed", "new_bytes", "reused", "root", "skipped", "trees")

    def __init__(self, root: str, trees: Trees, files: int, bytes: int,
                 new_bytes: int = 0, hashed: int = 0, skipped: list[tuple[str, str]] | None = None) -> None:
        self.root = root
        self.trees = trees
        self.reused = 0
        """folders whose tree hash came from the folder-hash cache"""
        self.files = files
        self.bytes = bytes
        self.new_bytes = new_bytes
        self.hashed = hashed
        self.skipped: list[tuple[str, str]] = [] if skipped is None else skipped


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def unreadable(path: str, exc: OSError) -> WorkbenchError:
    return WorkbenchError(
        f"cannot read {os.fsencode(path).decode('utf-8', 'backslashreplace')}: {exc.strerror}",
        "fix its permissions or add it to .workbenchignore",
    )


def walk(root: str, rules: IgnoreRules, skipped: list[tuple[str, str]], entries: dict[str, bytes],
         force: frozenset[str], todo: list[tuple[str, _Dir, str]], seen: list[str], *,
         start: str = "", hold: frozenset[str] = frozenset()) -> list[_Dir]:
    """Every folder under ``root/start`` (parents before children), without following symlinks.

    Files the stat index vouches for get their hash here; the others are appended to ``todo``.
    Paths in ``hold`` (files or folders) are left out entirely: the caller puts their old entry back.
    """
    out: list[_Dir] = []
    pending = [start]
    ignored = rules.ignored
    fast = not rules.has_user_rules
    skip_name = default_ignored
    get = entries.get
    isreg = stat_mod.S_ISREG
    unpack = PACKED.unpack
    coarse, fine = COARSE_MARGIN_NS, FINE_MARGIN_NS
    while pending:
        rel = pending.pop()
        node = _Dir(rel)
        folder = os.path.join(root, rel) if rel else root
        try:
            st = os.lstat(folder)  # before the listing: any later change of its entries changes it
            node.stat = st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino
            it = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            if rel:
                continue
            raise
        except PermissionError as exc:
            if not rel:
                raise unreadable(root, exc) from None
            skipped.append((rel, f"unreadable folder ({exc.strerror}); left out"))
            continue
        out.append(node)
        files = node.files
        raws = node.raws
        inside = SECRET_IN_FOLDER.get(rel.rpartition("/")[2])  # .kube/config, .aws/credentials...
        with it:
            for entry in it:
                name = entry.name
                if fast and (skip_name(name) or (inside is not None and name in inside)):
                    continue
                child = f"{rel}/{name}" if rel else name
                if hold and child in hold:
                    node.clean = False
                    continue
                try:
                    if entry.is_file(follow_symlinks=False):
                        if not fast and ignored(child, name, False):
                            continue
                        st = entry.stat(follow_symlinks=False)
                    elif entry.is_dir(follow_symlinks=False):
                        if fast or not ignored(child, name, True):
                            node.subdirs.append(name)
                            pending.append(child)
                        continue
                    else:
                        if not fast and ignored(child, name, False):
                            continue
                        if entry.is_symlink():
                            node.links[name] = os.readlink(entry.path)
                            continue
                        st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    skipped.append((child, "vanished"))
                    node.clean = False
                    continue
                if isreg(st.st_mode):
                    digest = None
                    raw = get(child)
                    size, mtime, ino, ctime = st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns
                    if raw is not None and child not in force:
                        e_size, e_mtime, e_ino, e_ctime, read_ns, e_hash = unpack(raw)
                        changed = mtime if mtime > ctime else ctime
                        if (e_size == size and e_mtime == mtime and e_ino == ino and e_ctime == ctime
                                and changed + (coarse if changed % NS == 0 else fine) < read_ns):
                            digest = e_hash.hex()
                    files[name] = [size, mtime, ino, ctime, st.st_mode & 0o777, digest]
                    seen.append(child)
                    if digest is None:
                        todo.append((child, node, name))
                        node.clean = False
                    else:
                        raws.append(raw)  # type: ignore[arg-type]
                else:
                    skipped.append((child, "not a regular file (FIFO, socket or device)"))
                    node.clean = False
    scanned = {d.rel for d in out}
    for node in out:
        node.subdirs = [s for s in node.subdirs if _join(node.rel, s) in scanned]
    return out


def _items(node: _Dir, sub: dict[str, tuple[str, int]]) -> tuple[list[Item], int] | None:
    """The tree items of a folder, or None while a file hash or sub-tree is still unknown."""
    files = node.files
    # f = [size, mtime_ns, ino, ctime_ns, mode, hash]: already ints and a str once hashed
    if any(f[5] is None for f in files.values()):
        return None
    items: list[Item] = [(name, FILE, f[4], f[0], f[5])  # type: ignore[misc]
                         for name, f in files.items()]
    total: int = sum(f[0] for f in files.values())  # type: ignore[misc]
    for name, target in node.links.items():
        items.append((name, LINK, 0, len(os.fsencode(target)), target))
    for name in node.subdirs:
        found = sub.get(_join(node.rel, name))
        if found is None:
            return None
        items.append((name, DIR, 0, found[1], found[0]))
        total += found[1]
    return items, total


def _fingerprint(node: _Dir, sub: dict[str, tuple[str, int]]) -> bytes | None:
    """What the folder's tree is made of, hashed (see :mod:`workbench.versioning.state`); only for a
    ``clean`` folder, whose ``raws`` line up with its files. None while a sub-tree is unknown."""
    parts = [f"{len(node.files)}\0{len(node.links)}\0{len(node.subdirs)}\0", "\0".join(node.files)]
    for name, target in node.links.items():
        parts += ("\0", name, "\0", target)
    for name in node.subdirs:
        found = sub.get(_join(node.rel, name))
        if found is None:
            return None
        parts += ("\0", name, "\0", found[0], "\0", str(found[1]))
    hasher = blake3.blake3("".join(parts).encode("utf-8", "surrogateescape"))
    hasher.update(b"".join(node.raws))
    return hasher.digest()


def _cached(node: _Dir, sub: dict[str, tuple[str, int]], index: StatIndex | None) -> tuple[
        bytes | None, tuple[str, int] | None]:
    """(fingerprint or None, the cached (tree hash, bytes) when it matches)."""
    if index is None or not node.clean:
        return None, None
    fingerprint = _fingerprint(node, sub)
    if fingerprint is None:
        return None, None
    return fingerprint, index.cached_tree(node.rel, fingerprint)


def _lazy_items(node: _Dir, sub: dict[str, tuple[str, int]]) -> list[Item]:
    built = _items(node, sub)
    assert built is not None, node.rel
    built[0].sort()
    return built[0]


def scan(root: str, rules: IgnoreRules, index: StatIndex, store: BlobStore | None, *,
         threshold: int, force: frozenset[str] = frozenset(), progress: Progress | None = None,
         workers: int = 0, start: str = "", hold: frozenset[str] = frozenset(),
         dirs_out: list[_Dir] | None = None) -> WorkTree:
    """Scan ``root`` (or only its folder ``start``: then ``result.root`` is that folder's tree and the
    stat index keeps entries outside it); with ``store``, everything the returned trees reference is
    stored on return. ``hold``: paths left out (see :func:`walk`). ``dirs_out`` gets the scanned
    folders (their files' stats, for a status seal)."""
    skipped: list[tuple[str, str]] = []
    todo: list[tuple[str, _Dir, str]] = []
    seen: list[str] = []
    dirs = walk(root, rules, skipped, index.entries, force, todo, seen, start=start, hold=hold)
    if dirs_out is not None:
        dirs_out.extend(dirs)
    by_rel = {d.rel: d for d in dirs}
    if not start:
        if len(seen) != len(index.entries):
            index.retain(set(seen))
        if len(by_rel) != len(index.trees):
            index.retain_trees(set(by_rel))
    if store is not None:
        todo.extend(_missing_blobs(dirs, by_rel, store, {t[0] for t in todo}, start, index))
    result = WorkTree("", Trees(), 0, 0, skipped=skipped)
    packing: AbstractContextManager[None] = (
        store.packing() if store is not None and len(todo) >= PACK_FROM_FILES else nullcontext())
    with packing:
        if todo:
            _ingest_all(root, todo, store, index, threshold, progress, workers, result, sniff_exempt(rules))
        _build(dirs, store, result, start, index)
    return result


def _missing_blobs(dirs: list[_Dir], by_rel: dict[str, _Dir], store: BlobStore,
                   queued: set[str], start: str = "", index: StatIndex | None = None,
                   ) -> list[tuple[str, _Dir, str]]:
    """Files with a trusted hash whose blob is not in the cache (skipping fully stored folders)."""
    complete: dict[str, tuple[str, int]] = {}
    for node in reversed(dirs):
        known = _cached(node, complete, index)[1]
        if known is not None:
            complete[node.rel] = known
            continue
        built = _items(node, complete)
        if built is not None:
            complete[node.rel] = (tree_hash(encode_tree(built[0])), built[1])
    out: list[tuple[str, _Dir, str]] = []
    stack = [start] if start in by_rel else []
    while stack:
        node = by_rel[stack.pop()]
        done = complete.get(node.rel)
        if done is not None and store.has(done[0]):
            continue
        for name, f in node.files.items():
            rel = _join(node.rel, name)
            if f[5] is not None and rel not in queued and not store.has(str(f[5])):
                f[5] = None
                node.clean = False
                out.append((rel, node, name))
        stack.extend(_join(node.rel, s) for s in node.subdirs if _join(node.rel, s) in by_rel)
    return out


def _ingest_all(root: str, todo: list[tuple[str, _Dir, str]], store: BlobStore | None,
                index: StatIndex, threshold: int, progress: Progress | None, workers: int,
                result: WorkTree, exempt: Callable[[str], bool] | None = None) -> None:
    """Read (hash, store) every file of ``todo``; ``exempt(rel)``: files versioned even when they look
    like a secret (re-included by ``!path``)."""
    todo.sort(key=_size, reverse=True)
    total = sum(map(_size, todo))
    done = 0
    by_workers = 0
    """Bytes of the small files the forked workers read and published (while they run: reported)."""
    shown = 0
    workers = workers or max(2, min(4, cpu_budget()))

    def sniff_of(rel: str) -> str:
        return "refuse" if exempt is None or not exempt(rel) else "keep"

    def one(rel: str) -> Ingested:
        path = os.path.join(root, rel)
        sniff = sniff_of(rel)
        try:
            for attempt in range(RETRIES):
                try:
                    return ingest(path, store, threshold, sniff=sniff)
                except UnstableFileError:
                    time.sleep(0.02 * (attempt + 1))
            return ingest(path, store, threshold, sniff=sniff)
        except (FileNotFoundError, IsADirectoryError):
            raise
        except OSError as exc:  # the file itself (not the cache: its errors name the cache path)
            if exc.filename not in (None, path):
                raise
            raise UnreadableFileError(exc.strerror or str(exc)) from None

    def batch(rels: list[str]) -> list[Ingested | Exception]:
        out: list[Ingested | Exception] = []
        for rel in rels:
            try:
                out.append(one(rel))
            except Exception as exc:  # settled (reported or re-raised) by the main thread, in order
                out.append(exc)
        return out

    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    from workbench.versioning.chunking import Ingested, UnstableFileError, ingest

    def settle(items: list[tuple[str, _Dir, str]], outcomes: list[Ingested | Exception]) -> None:
        nonlocal done
        for (rel, node, name), got in zip(items, outcomes, strict=True):
            done += _size((rel, node, name))
            _settle(got, rel, node, name, index, store, result)
        report()

    def report() -> None:
        nonlocal shown
        if progress is not None:  # never backwards (a dead worker's files are counted again)
            shown = max(shown, done + by_workers)
            progress(shown, total)

    def settle_large(block: bool) -> None:
        finished = wait(pending, return_when=FIRST_COMPLETED)[0] if block else [
            f for f in pending if f.done()]
        for fut in finished:
            settle(pending.pop(fut), fut.result())

    # Large files go to the threads (their chunks are hashed and compressed on every core). Many
    # small files go to forked workers, one per core (see :mod:`forked`: threads gained nothing on
    # them, the GIL being held for half of each file's work); a few are read here, in batches,
    # between settling the large ones (a thread per small file spent more on handing results over
    # than on the file: 2 threads took 13-14 s for 100,000 small files where this one took 7.7).
    def settle_forked(forked: ForkedIngest) -> list[tuple[str, _Dir, str]]:
        """Settle the workers' results as they publish them; returns the files to read here."""
        nonlocal by_workers
        redo: list[tuple[str, _Dir, str]] = []
        published = 0
        while forked.running:
            got = forked.poll(0.05 if pending else None)
            ok = [(small[i], fields) for i, fields in got if fields is not None]
            redo.extend(small[i] for i, fields in got if fields is None)
            for item, fields in ok:
                published += _size(item)
                _settle(Ingested(*fields), *item, index, store, result)
            by_workers = max(published, forked.progress())
            settle_large(False)
            report()
        by_workers = published
        redo.extend(small[i] for i in forked.leftovers())
        return redo

    large = [t for t in todo if _size(t) >= threshold]
    small = todo[len(large):]  # todo is sorted largest first
    forked = _fork_small(root, small, store, threshold, sniff_of)
    pending: dict[Future[list[Ingested | Exception]], list[tuple[str, _Dir, str]]] = {}
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wb-hash") as pool:
            try:
                pending.update((pool.submit(batch, [item[0]]), [item]) for item in large)
                if forked is not None:
                    small = settle_forked(forked)
                for items in _batches(small):
                    settle(items, batch([item[0] for item in items]))
                    settle_large(False)
                while pending:
                    settle_large(True)
            except BaseException:
                if forked is not None:
                    forked.close()  # before waiting for the threads
                for fut in pending:
                    fut.cancel()
                raise
    finally:
        if forked is not None:
            forked.close()


def _fork_small(root: str, small: list[tuple[str, _Dir, str]], store: BlobStore | None, threshold: int,
                sniff_of: Callable[[str], str]) -> ForkedIngest | None:
    """Start workers for the small files when there are enough of them (see :mod:`forked`)."""
    if not small:
        return None
    from workbench.versioning.forked import ForkedIngest, worker_count

    count = worker_count(len(small))
    if not count:
        return None
    forked = ForkedIngest(root, [item[0] for item in small], store, threshold, sniff_of, count)
    forked.start()
    return forked


def _size(item: tuple[str, _Dir, str]) -> int:
    """The size a file of ``todo`` had when the folder was walked."""
    size: int = int(item[1].files[item[2]][0])  # type: ignore[call-overload]
    return size


def _batches(todo: list[tuple[str, _Dir, str]]) -> Iterator[list[tuple[str, _Dir, str]]]:
    """Small files in groups of up to BATCH_BYTES or BATCH_FILES, so progress is reported and the
    large files' results are settled between groups."""
    group: list[tuple[str, _Dir, str]] = []
    size = 0
    for item in todo:
        group.append(item)
        size += _size(item)
        if size >= BATCH_BYTES or len(group) >= BATCH_FILES:
            yield group
            group, size = [], 0
    if group:
        yield group


class UnreadableFileError(Exception):
    """A file in the work tree that cannot be read (no permission, an I/O error): skipped, not fatal."""


def _keep_previous(rel: str, node: _Dir, name: str, index: StatIndex, store: BlobStore | None,
                   result: WorkTree, why: str) -> None:
    """Keep a file at the version the stat index knows (if its blob is stored), else leave it out."""
    old = index.get(rel)
    if old is not None and (store is None or store.has(old[4])):
        node.files[name][5] = old[4]
        node.files[name][0] = old[0]
        result.skipped.append((rel, f"{why}; kept its previous version"))
    else:
        del node.files[name]
        result.skipped.append((rel, f"{why}; left out"))


def _settle(got: Ingested | Exception, rel: str, node: _Dir, name: str, index: StatIndex,
            store: BlobStore | None, result: WorkTree) -> None:
    from workbench.versioning.chunking import NotRegularFileError, UnstableFileError
    from workbench.versioning.secrets import LooksLikeSecret, skip_reason

    try:
        if isinstance(got, Exception):
            raise got
    except LooksLikeSecret as found:
        del node.files[name]
        result.skipped.append((rel, skip_reason(rel, found.kind)))
        if index.entries.pop(rel, None) is not None:
            index.dirty = True
        return
    except FileNotFoundError:
        del node.files[name]
        result.skipped.append((rel, "vanished"))
        return
    except NotRegularFileError:
        del node.files[name]
        result.skipped.append((rel, "replaced by something that is not a regular file"))
        return
    except UnstableFileError:
        _keep_previous(rel, node, name, index, store, result, "changed while being read")
        return
    except UnreadableFileError as exc:
        _keep_previous(rel, node, name, index, store, result, f"unreadable ({exc})")
        return
    except PermissionError as exc:
        raise unreadable(rel, exc) from None
    except IsADirectoryError:
        del node.files[name]
        return
    f = node.files[name]
    f[0], f[1], f[2], f[3], f[4], f[5] = got.size, got.mtime_ns, got.ino, got.ctime_ns, got.mode, got.hash
    if got.secret is None:  # a secret kept by '!path' is read again each scan: drop the '!' and it goes
        index.put(rel, (got.size, got.mtime_ns, got.ino, got.ctime_ns, got.hash, got.started_ns))
    result.hashed += 1
    result.new_bytes += got.new_bytes


def _build(dirs: list[_Dir], store: BlobStore | None, result: WorkTree, start: str = "",
           index: StatIndex | None = None) -> None:
    """Trees bottom-up; with a store, write each missing tree after its children. With ``index``, a
    clean folder whose fingerprint matches the folder-hash cache reuses its hash (when stored, with
    a store), and the hashes of the other clean folders are recorded there."""
    sub: dict[str, tuple[str, int]] = {}
    files = 0
    for node in reversed(dirs):
        files += len(node.files) + len(node.links)
        fingerprint, known = _cached(node, sub, index)
        if known is not None and (store is None or store.has(known[0])):
            sub[node.rel] = known
            result.trees.lazy[known[0]] = partial(_lazy_items, node, sub)
            result.reused += 1
            continue
        built = _items(node, sub)
        assert built is not None, node.rel
        items, total = built
        data = encode_tree(items)
        digest = tree_hash(data)
        sub[node.rel] = (digest, total)
        result.trees[digest] = items
        if fingerprint is not None and index is not None:
            index.put_tree(node.rel, fingerprint, digest, total)
        if store is not None and not store.has(digest):
            _, written = store.put_bytes(data, digest)
            result.new_bytes += written
    result.root, result.bytes = sub[start] if start in sub else (tree_hash(encode_tree([])), 0)
    result.files = files
