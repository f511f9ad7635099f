"""Small files read, hashed and stored by forked worker processes: one per core.

Why processes: per small file CPython holds the GIL for about half of the ~65 µs it takes (the
``os`` calls, the stat checks, the bookkeeping), so threads reading small files gained nothing (10,000
files of 1-64 KiB: 0.77-0.90 s on one thread, 0.77-0.94 s on two, 1.0-1.2 s on three), while forked
processes scale with the cores (0.66 s in one, 0.33 s in two). Large files stay in the parent's
threads, where BLAKE3 and zstd release the GIL for whole chunks.

The protocol, built so that a worker can never make the parent record something that is not stored:

- The parent forks ``W`` workers before it starts any thread of its own for the scan. The files
  come sorted by size, largest first, cut into at most :data:`MAX_BATCHES` batches of consecutive
  files; the numbers of the batches wait in a pipe, written in one ``write`` before the fork, and
  each worker takes the next batch when it is done with one (a pipe's reads are atomic: a batch
  goes to one worker). A worker that gets less of the CPU (the parent's threads hash a large file
  beside it) takes fewer batches: the workers end together, the largest files having gone first.
- A worker reads each file with :func:`~workbench.versioning.chunking.ingest` once, without retries,
  storing into pack files of its own (or loose objects, when the parent's scan writes those). Every
  :data:`PUBLISH_FILES` files or :data:`PUBLISH_BYTES` bytes it publishes those packs (their index
  files are renamed into place) and only then sends the results for the files in them: the parent
  never puts into a tree an object it cannot find.
- A result is the file's :class:`~workbench.versioning.chunking.Ingested` fields, or ``None`` for any
  failure: the parent reads those files again itself, so a secret, a vanished or changing file, or a
  full disk is reported exactly as a serial scan reports it.
- Files without a result once every worker has ended (a worker died, killed or out of memory; a
  fork was refused and no worker took them) are read by the parent itself; a dead worker's
  unpublished pack is deleted by the next ``gc``.
- A worker ends with ``os._exit``: it never returns into the parent's code, runs no ``atexit``
  handler and flushes no inherited buffer. Its standard streams point at ``/dev/null`` (it holds no
  terminal or pipe of the parent's), and the kernel kills it if the thread that forked it ends
  (``PR_SET_PDEATHSIG``): a killed parent leaves no worker behind.

Frames on each worker's pipe: a 4-byte length, then a ``marshal``-ed tuple: ``("p", bytes)`` read so
far (progress) or ``("r", results)`` published, each result the file's index and its fields. The
pipe's end is the worker's end.
"""

from __future__ import annotations

import marshal
import os
import selectors
import signal
import struct
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from workbench.versioning.blobs import BlobStore

MIN_FILES_PER_WORKER = 512
"""Fewer files than this per worker are read in the parent: a fork costs more than they do."""
MAX_WORKERS = 16
PUBLISH_FILES = 8192
PUBLISH_BYTES = 128 * 1024 * 1024
PROGRESS_FILES = 256
MAX_BATCHES = 1024
"""Batches the files are cut into: their numbers, 4 bytes each, fit a pipe's smallest buffer (one
page, 4 KiB) in one write, so the parent never blocks writing them."""
_BATCH = struct.Struct("<I")
ENV = "WORKBENCH_INGEST_PROCESSES"
"""Set to 0 to read every file in the process itself; to N to use N workers (even for few files)."""
_LENGTH = struct.Struct("<I")

# Python 3.12+ warns on every fork of a process with threads (the watcher's, the TUI's). A worker
# only reads files, hashes, compresses and writes its own packs with objects made after the fork,
# then leaves with os._exit; the one lock it shares with the parent's threads, the pack index's, is
# replaced in the worker first (BlobStore.after_fork).
warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks",
                        category=DeprecationWarning)

Fields = tuple[Any, ...]
"""An :class:`~workbench.versioning.chunking.Ingested`'s fields, in order."""


def worker_count(files: int) -> int:
    """How many workers should read ``files`` small files (0: read them in this process)."""
    if sys.platform != "linux" or not hasattr(os, "fork"):
        return 0
    wanted = os.environ.get(ENV, "").strip()
    if wanted:
        forced = int(wanted) if wanted.isdigit() else 0
        count = min(forced, MAX_WORKERS, files)
    else:
        from workbench.host.cpus import cpu_budget

        count = min(cpu_budget(), MAX_WORKERS, files // MIN_FILES_PER_WORKER)
    return count if count >= 2 or (wanted and count >= 1) else 0


@dataclass
class _Worker:
    pid: int
    fd: int
    progress: int = 0
    """Bytes read, as last reported."""
    buffer: bytearray = field(default_factory=bytearray)


class ForkedIngest:
    """The workers reading one scan's small files; the parent polls them for published results."""

    def __init__(self, root: str, rels: list[str], store: BlobStore | None, threshold: int,
                 sniff_of: Callable[[str], str], workers: int) -> None:
        self.root = root
        self.rels = rels
        self.store = store
        self.threshold = threshold
        self.sniff_of = sniff_of
        self.count = workers
        self.workers: list[_Worker] = []
        self.selector = selectors.DefaultSelector()
        self.closed = False
        self.batch = max(1, -(-len(rels) // MAX_BATCHES))
        """Files per batch (the last batch may hold fewer)."""
        self.answered = bytearray(len(rels))
        """1 for each file a worker published a result for."""

    def start(self) -> None:
        """Fork the workers (call it before this scan starts any thread). Where the system refuses
        a fork (a process limit, no memory), the files of the workers not started are left to the
        parent (:meth:`leftovers`)."""
        parent = os.getpid()
        batches = -(-len(self.rels) // self.batch)
        queue_fd, fill_fd = os.pipe()
        try:
            os.write(fill_fd, b"".join(_BATCH.pack(b) for b in range(batches)))
        finally:
            os.close(fill_fd)  # a worker that finds the pipe empty reads its end: no more batches
        try:
            self._fork_all(queue_fd, parent)
        finally:
            os.close(queue_fd)

    def _fork_all(self, queue_fd: int, parent: int) -> None:
        for _ in range(self.count):
            try:
                read_fd, write_fd = os.pipe()
                try:
                    pid = os.fork()
                except OSError:
                    os.close(read_fd)
                    os.close(write_fd)
                    raise
            except OSError:  # its batches go to the other workers, or are left to the parent
                continue
            if pid == 0:  # the worker: never returns
                os.close(read_fd)
                self._worker_main(write_fd, queue_fd, parent)
            os.close(write_fd)
            worker = _Worker(pid, read_fd)
            self.workers.append(worker)
            self.selector.register(read_fd, selectors.EVENT_READ, worker)

    @property
    def running(self) -> bool:
        return bool(self.selector.get_map())

    def progress(self) -> int:
        """Bytes the workers have read so far."""
        return sum(w.progress for w in self.workers)

    def poll(self, timeout: float | None) -> list[tuple[int, Fields | None]]:
        """Results published since the last poll: (index into ``rels``, fields or None to redo)."""
        out: list[tuple[int, Fields | None]] = []
        for key, _events in self.selector.select(timeout):
            worker: _Worker = key.data
            try:
                data = os.read(worker.fd, 1 << 20)
            except InterruptedError:
                continue
            if not data:
                self._finish(worker)
                continue
            worker.buffer += data
            self._frames(worker, out)
        return out

    def _frames(self, worker: _Worker, out: list[tuple[int, Fields | None]]) -> None:
        buf = worker.buffer
        at = 0
        while len(buf) - at >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buf, at)
            if len(buf) - at - _LENGTH.size < length:
                break
            frame = marshal.loads(bytes(buf[at + _LENGTH.size: at + _LENGTH.size + length]))
            at += _LENGTH.size + length
            if frame[0] == "p":
                worker.progress = frame[1]
            else:
                for index, got in frame[1]:
                    self.answered[index] = 1
                    out.append((index, got))
        del buf[:at]

    def _finish(self, worker: _Worker) -> None:
        self.selector.unregister(worker.fd)
        os.close(worker.fd)
        worker.fd = -1
        _reap(worker.pid)

    def leftovers(self) -> list[int]:
        """Once no worker runs: the files without a result (a worker died before publishing them, or
        no worker took them), to be read here."""
        return [i for i, done in enumerate(self.answered) if not done]

    def close(self) -> None:
        """Stop the workers still running (the parent is failing or interrupted) and reap them.
        Closing again does nothing."""
        if self.closed:
            return
        self.closed = True
        for worker in self.workers:
            if worker.fd >= 0:
                try:
                    os.kill(worker.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.selector.unregister(worker.fd)
                os.close(worker.fd)
                worker.fd = -1
                _reap(worker.pid)
        self.selector.close()

    # -- the worker's side ----------------------------------------------------------------------
    def _worker_main(self, fd: int, queue_fd: int, parent: int) -> NoReturn:
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: the worker just stops
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _die_with(parent)
            null = os.open(os.devnull, os.O_RDWR)
            for std in (0, 1, 2):  # hold no terminal or pipe of the parent's (`snapshot | tail`)
                os.dup2(null, std)
            os.close(null)
            self._work(fd, queue_fd)
            code = 0
        except BaseException:  # nothing may escape a forked child
            code = 1
        finally:
            os._exit(code)

    def _batches(self, queue_fd: int) -> Iterator[int]:
        """The files of each batch this worker takes from the queue, until it is empty."""
        while len(got := os.read(queue_fd, _BATCH.size)) == _BATCH.size:
            (number,) = _BATCH.unpack(got)
            yield from range(number * self.batch, min((number + 1) * self.batch, len(self.rels)))

    def _work(self, fd: int, queue_fd: int) -> None:
        from workbench.versioning.chunking import ingest

        store = self.store
        packing = store is not None and store.is_packing  # else loose objects, as the parent writes
        if store is not None:
            store.after_fork()  # drops the parent's packing block: the parent publishes that one
        results: list[tuple[int, Fields | None]] = []
        done = unpublished = 0

        def publish() -> None:
            nonlocal results, unpublished
            if store is not None and packing:
                store.publish_packing()
            _send(fd, ("r", results))
            results, unpublished = [], 0

        for n, i in enumerate(self._batches(queue_fd)):
            if store is not None and packing and not results:
                store.begin_packing()
            rel = self.rels[i]
            try:
                got = ingest(os.path.join(self.root, rel), store, self.threshold, sniff=self.sniff_of(rel))
            except Exception:  # the parent reads it again, reports what it finds
                results.append((i, None))
            else:
                results.append((i, (got.hash, got.size, got.mode, got.mtime_ns, got.ino, got.ctime_ns,
                                    got.started_ns, got.new_bytes, got.secret)))
                done += got.size
                unpublished += got.size
            if len(results) >= PUBLISH_FILES or unpublished >= PUBLISH_BYTES:
                publish()
            elif n % PROGRESS_FILES == PROGRESS_FILES - 1:
                _send(fd, ("p", done))
        if results:
            publish()
        os.close(fd)


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when the thread that forked it ends (the parent killed):
    an orphan never goes on reading files for nobody."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request above
        os._exit(1)


def _send(fd: int, frame: tuple[Any, ...]) -> None:
    data = marshal.dumps(frame)
    view = memoryview(_LENGTH.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
