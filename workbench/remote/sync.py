"""Push and pull: move objects and metadata bundles between the project and a remote.

Remote layout (below the remote's prefix)::

    objects/ab/cdef...          blob-cache objects exactly as stored (tag byte + body), by content hash
    bundles/<blake3>.jsonl.zst  immutable metadata bundles (zstd JSON lines: a header, then records)

Objects are shared by every project using the prefix (content addressing deduplicates them). A push
writes every object with a conditional put (``If-None-Match: *``), in an order that keeps the remote
consistent at every instant: chunks and plain blobs, then chunk manifests, then directory trees,
and only then the bundle naming them, under a new name. Two pushes never write the same bundle name,
so both land; the listing of ``bundles/`` is the index, so nothing needs a lock.

A pull lists ``bundles/``, fetches those not merged yet, fetches every object their snapshots and
model versions need (verified by BLAKE3 on arrival; a damaged object is refused and nothing is
merged), writes trees only after their content, then merges all the records in one transaction
(:mod:`workbench.remote.records`). An interrupted push or pull leaves nothing half-visible and
resumes where it stopped on the next run.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import blake3

from workbench.errors import WorkbenchError
from workbench.remote import records as rec
from workbench.remote.transport import RemoteError, RemoteSpec, Transport

if TYPE_CHECKING:
    from workbench.versioning.blobs import BlobStore
    from workbench.versioning.versioned import VersionedProject

Progress = Callable[[int, int], None]
"""``progress(done_bytes, total_bytes)``, called from worker threads as transfers complete."""
WORKERS = 16
HEAD_FIRST = 256 * 1024
"""Objects at least this large are checked with HEAD before being sent (skip sending known bytes)."""
BUNDLE_FORMAT = "workbench-bundle/1"
_RECORD_SENT = ("INSERT OR REPLACE INTO remote_records (remote_key, kind, record_id, digest)"
                " VALUES (?, ?, ?, ?)")
_BUNDLE_SEEN = "INSERT OR IGNORE INTO remote_bundles (remote_key, name, merged_at) VALUES (?, ?, ?)"
_OBJECT_THERE = "INSERT OR IGNORE INTO remote_objects (remote_key, hash) VALUES (?, ?)"
_SNAPSHOT_THERE = "INSERT OR IGNORE INTO remote_snapshots (remote_key, snapshot_id) VALUES (?, ?)"


def object_key(digest: str) -> str:
    return f"objects/{digest[:2]}/{digest[2:]}"


@dataclass
class PushReport:
    remote: str
    objects_sent: int = 0
    objects_present: int = 0
    bytes_sent: int = 0
    records: dict[str, int] = field(default_factory=dict)
    bundle: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PullReport:
    remote: str
    bundles: int = 0
    objects_fetched: int = 0
    bytes_fetched: int = 0
    added: dict[str, int] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Meter:
    """Thread-safe byte counter feeding the progress callable."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done, self._progress = total, 0, progress
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
            done = self.done
        if self._progress is not None:
            self._progress(done, self.total)


def _parallel(fn: Callable[[Any], Any], items: Iterable[Any], cancel: threading.Event | None,
              workers: int = WORKERS) -> list[Any]:
    """Run ``fn`` over ``items`` on a thread pool; the first error cancels the rest and is raised."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    items = list(items)
    if not items:
        return []
    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)))
    try:
        futures = [pool.submit(_guard, fn, item, cancel) for item in items]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
        return [f.result() for f in futures]
    finally:
        # On an error or Ctrl+C, drop what has not started; transfers under way finish (each is whole).
        pool.shutdown(wait=True, cancel_futures=True)


def _guard(fn: Callable[[Any], Any], item: Any, cancel: threading.Event | None) -> Any:
    if cancel is not None and cancel.is_set():
        raise WorkbenchError("cancelled", "run the command again to resume")
    return fn(item)


# -- push ---------------------------------------------------------------------------------------
class Pusher:
    def __init__(self, ws: VersionedProject, spec: RemoteSpec, transport: Transport,
                 progress: Progress | None = None, cancel: threading.Event | None = None) -> None:
        self.ws, self.spec, self.transport = ws, spec, transport
        self.key = spec.key
        self.progress, self.cancel = progress, cancel

    @property
    def store(self) -> BlobStore:
        return self.ws.versions.store

    def pending(self) -> list[tuple[str, str, str]]:
        """``(kind, id, digest)`` of every record not yet on the remote in its current state."""
        db = self.ws.db
        now = rec.fingerprints(db)
        sent = {(k, i): d for k, i, d in db.execute(
            "SELECT kind, record_id, digest FROM remote_records WHERE remote_key = ?", (self.key,))}
        return [(k, i, d) for (k, i), d in now.items() if sent.get((k, i)) != d]

    def run(self) -> PushReport:
        report = PushReport(self.spec.url)
        todo = self.pending()
        if not todo:
            return report
        self.transport.check()
        db = self.ws.db
        records = [r for r in (rec.build(db, k, i) for k, i, _ in todo) if r is not None]
        self.send_objects(*self._objects(records), report=report)
        name = self._send_bundle(records, report)
        with self.ws.atomic() as tx:
            tx.executemany(_RECORD_SENT, [(self.key, k, i, d) for k, i, d in todo])
            tx.executemany(_SNAPSHOT_THERE, [(self.key, r["id"]) for r in records if r["kind"] == "snapshot"])
            tx.execute(_BUNDLE_SEEN, (self.key, name, time.time()))
        for r in records:
            report.records[r["kind"]] = report.records.get(r["kind"], 0) + 1
        return report

    def send_objects(self, plain: list[str], manifests: list[str], trees: list[str], *,
                     report: PushReport) -> None:
        """Send objects in the order that keeps the remote consistent (content before what names
        it: a reader never finds a tree whose files are missing) and remember them as there."""
        sizes = {h: self.store.size_on_disk(h) for h in (*plain, *manifests, *trees)}
        meter = _Meter(sum(sizes.values()), self.progress)
        counting = threading.Lock()

        def send(digest: str) -> None:
            size = sizes[digest]
            key = object_key(digest)
            sent = not (size >= HEAD_FIRST and self.transport.exists(key)) and \
                self.transport.put_if_absent(key, self.store.read_encoded(digest))
            with counting:
                if sent:
                    report.objects_sent += 1
                    report.bytes_sent += size
                else:
                    report.objects_present += 1
            meter.add(size)

        for phase in (plain, manifests, trees):
            _parallel(send, phase, self.cancel)
            with self.ws.atomic() as tx:
                tx.executemany(_OBJECT_THERE, [(self.key, h) for h in phase])

    def _objects(self, records: list[rec.Record]) -> tuple[list[str], list[str], list[str]]:
        """The objects the records need that the remote is not known to hold: (plain, manifests, trees)."""
        db = self.ws.db
        known = {h for (h,) in db.execute("SELECT hash FROM remote_objects WHERE remote_key = ?",
                                          (self.key,))}
        done_snaps = {s for (s,) in db.execute(
            "SELECT snapshot_id FROM remote_snapshots WHERE remote_key = ?", (self.key,))}
        reader = self.ws.versions.reader
        files: set[str] = set()
        trees: list[str] = []
        seen_trees: set[str] = set()
        for record in records:
            roots, blobs = rec.object_refs(record)
            if record["kind"] == "snapshot" and record["id"] in done_snaps:
                roots = []
            files.update(h for h in blobs if h not in known)
            stack = [r for r in roots if r not in known]
            while stack:
                tree = stack.pop()
                if tree in seen_trees:
                    continue
                seen_trees.add(tree)
                trees.append(tree)
                for item in reader.items(tree):
                    if item[1] == "d":
                        if item[4] not in known:
                            stack.append(item[4])
                    elif item[1] == "f" and item[4] not in known:
                        files.add(item[4])
        plain: set[str] = set()
        manifests: list[str] = []
        for digest in files:
            if not self.store.has(digest):
                raise WorkbenchError(f"object {digest[:12]} is missing from the local cache; cannot push it",
                                     "run 'workbench fsck' to see what is affected")
            if self.store.kind(digest) == b"C":
                manifests.append(digest)
                plain.update(h for h, _ in self.store.chunks(digest) or [] if h not in known)
            else:
                plain.add(digest)
        return sorted(plain), manifests, trees

    def _send_bundle(self, records: list[rec.Record], report: PushReport) -> str:
        import getpass
        import socket
        import uuid

        import zstandard

        header = {"format": BUNDLE_FORMAT, "id": uuid.uuid4().hex, "created_at": time.time(),
                  "pushed_by": f"{getpass.getuser()}@{socket.gethostname()}", "records": len(records)}
        lines = [json.dumps(header)] + [json.dumps(r, default=str) for r in records]
        body = zstandard.ZstdCompressor(level=3).compress(("\n".join(lines) + "\n").encode())
        name = blake3.blake3(body).hexdigest()
        self.transport.put_if_absent(f"bundles/{name}.jsonl.zst", body)
        report.bundle = name
        report.bytes_sent += len(body)
        return name


# -- pull ---------------------------------------------------------------------------------------
def parse_bundle(name: str, body: bytes) -> list[rec.Record]:
    """The records of a bundle, after checking its bytes hash to its name."""
    import zstandard

    if blake3.blake3(body).hexdigest() != name:
        raise RemoteError(f"bundle {name[:12]} on the remote does not match its hash; it was refused",
                          "the copy on the remote is damaged: push again from a machine that has it")
    try:
        text = zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 34).decode()
        lines = text.splitlines()
        header = json.loads(lines[0])
        if header.get("format") != BUNDLE_FORMAT:
            raise ValueError(header.get("format"))
        records = [json.loads(line) for line in lines[1:] if line]
        for r in records:
            if not (isinstance(r, dict) and isinstance(r.get("kind"), str) and isinstance(r.get("id"), str)
                    and isinstance(r.get("row"), dict)):
                raise ValueError("a malformed record")
        return records
    except (ValueError, IndexError, zstandard.ZstdError) as exc:
        raise RemoteError(f"bundle {name[:12]} is not a bundle this version can read ({exc})",
                          "upgrade workbench") from None


def fetch_one(store: BlobStore, transport: Transport, digest: str) -> bool:
    """Fetch one object (a chunk manifest with its chunks, in parallel) into the cache, verified.
    False when the remote does not have it."""
    from workbench.versioning.blobs import decode_manifest

    key = object_key(digest)
    if not transport.exists(key):
        return False
    blob = transport.get(key)
    if blob[:1] == b"C":
        try:
            chunks = sorted({h for h, _ in decode_manifest(blob[1:])})
        except ValueError:
            raise store.corrupt_received(digest) from None
        _parallel(lambda h: store.put_encoded(h, transport.get(object_key(h))),
                  [h for h in chunks if not store.has(h)], None)
    store.put_encoded(digest, blob)
    return True


class Puller:
    def __init__(self, ws: VersionedProject, spec: RemoteSpec, transport: Transport, source: str,
                 progress: Progress | None = None, cancel: threading.Event | None = None,
                 metadata_only: bool = False) -> None:
        self.metadata_only = metadata_only
        self.ws, self.spec, self.transport = ws, spec, transport
        self.key, self.source = spec.key, source
        self.progress, self.cancel = progress, cancel
        self.store: BlobStore = ws.versions.store
        self.report = PullReport(spec.url)
        self._lock = threading.Lock()

    def new_bundles(self) -> list[str]:
        listed = [k.rsplit("/", 1)[-1].removesuffix(".jsonl.zst") for k, _ in self.transport.list("bundles/")
                  if k.endswith(".jsonl.zst")]
        merged = {n for (n,) in self.ws.db.execute(
            "SELECT name FROM remote_bundles WHERE remote_key = ?", (self.key,))}
        return sorted(n for n in listed if n not in merged)

    def run(self) -> PullReport:
        self.store.ensure_dirs()
        names = self.new_bundles()
        if not names:
            return self.report
        bodies = _parallel(lambda n: parse_bundle(n, self.transport.get(f"bundles/{n}.jsonl.zst")),
                           names, self.cancel)
        records = [r for body in bodies for r in body]
        merge = rec.MergeReport()
        try:
            self._fetch_objects(records)
            self._merge(records, names, merge)
        except (KeyError, TypeError, ValueError, AttributeError, sqlite3.IntegrityError) as exc:
            raise RemoteError(f"a bundle on {self.spec.url} holds a record this project cannot merge"
                              f" ({type(exc).__name__}: {exc}); nothing was merged",
                              "check both sides run the same Workbench version") from None
        self.report.bundles = len(names)
        self.report.added = merge.added
        self.report.conflicts = merge.conflicts
        return self.report

    def _merge(self, records: list[rec.Record], names: list[str], merge: rec.MergeReport) -> None:
        with self.ws.atomic() as db:
            rec.merge(db, records, self.source, merge)
            now = time.time()
            db.executemany(_BUNDLE_SEEN, [(self.key, n, now) for n in names])
            # What came from the remote is on the remote: a later push need not send it back.
            prints = rec.fingerprints(db)
            db.executemany(_RECORD_SENT, [(self.key, k, i, prints[(k, i)])
                                          for k, i in merge.merged_ids if (k, i) in prints])
            db.executemany(_SNAPSHOT_THERE, [(self.key, r["id"]) for r in records if r["kind"] == "snapshot"])
            db.executemany("INSERT OR IGNORE INTO object_pins (hash, created_at) VALUES (?, ?)",
                           [(r["row"]["hash"], now) for r in records if r["kind"] == "model_version"])

    def _get(self, digest: str) -> bytes:
        blob = self.transport.get(object_key(digest))
        with self._lock:
            self.report.objects_fetched += 1
            self.report.bytes_fetched += len(blob)
        if self.progress is not None:
            self.progress(self.report.bytes_fetched, 0)
        return blob

    def _fetch_objects(self, records: list[rec.Record]) -> None:
        """Everything the records need, verified; trees written last, deepest first."""
        from workbench.versioning.trees import decode_tree

        roots: list[str] = []
        files: set[str] = set()
        for record in records:
            r, f = rec.object_refs(record)
            roots.extend(r)
            files.update(f)
        trees: list[tuple[str, bytes]] = []
        level = sorted({t for t in roots if not self.store.has(t)})
        seen: set[str] = set(level)
        while level:
            blobs = _parallel(self._get, level, self.cancel)
            following: list[str] = []
            for digest, blob in zip(level, blobs, strict=True):
                trees.append((digest, blob))
                for item in decode_tree(digest, self.store.decode_received(digest, blob)):
                    ref = item[4]
                    if item[1] == "d" and ref not in seen and not self.store.has(ref):
                        seen.add(ref)
                        following.append(ref)
                    elif item[1] == "f":
                        files.add(ref)
            level = following
        missing = sorted(h for h in files if not self.store.has(h))
        if self.metadata_only:
            # Trees only: file contents stay on the remote until something reads them (fetch_one).
            for digest, blob in reversed(trees):
                self.store.put_encoded(digest, blob)
            with self.ws.atomic() as db:
                db.executemany(_OBJECT_THERE, [(self.key, h) for h in (*missing, *(t for t, _ in trees))])
            return
        manifests: list[tuple[str, bytes]] = []

        def fetch_plain(digest: str) -> None:
            blob = self._get(digest)
            if blob[:1] == b"C":
                with self._lock:
                    manifests.append((digest, blob))
            else:
                self.store.put_encoded(digest, blob)

        _parallel(fetch_plain, missing, self.cancel)
        from workbench.versioning.blobs import decode_manifest

        chunks: set[str] = set()
        for digest, blob in manifests:
            try:
                chunks.update(h for h, _ in decode_manifest(blob[1:]))
            except ValueError:
                raise self.store.corrupt_received(digest) from None
        _parallel(lambda h: self.store.put_encoded(h, self._get(h)),
                  sorted(h for h in chunks if not self.store.has(h)), self.cancel)
        _parallel(lambda m: self.store.put_encoded(*m), manifests, self.cancel, workers=2)
        for digest, blob in reversed(trees):
            self.store.put_encoded(digest, blob)
        with self.ws.atomic() as db:
            fetched = (*missing, *chunks, *(t for t, _ in trees))
            db.executemany(_OBJECT_THERE, [(self.key, h) for h in fetched])
