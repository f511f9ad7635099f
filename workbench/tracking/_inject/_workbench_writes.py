"""Zero-code write capture for Python children of a plain ``workbench run`` (stdlib only).

The capture ``sitecustomize`` imports this module (from the same folder, while it is still on
``sys.path``) when ``WORKBENCH_WRITES`` names a file. :func:`install_write_tracking` then makes
``open`` record, each time the process closes a project file it wrote, the SHA-256 of the bytes it
wrote, so that the runner can tell afterwards whether the project's file is still this run's bytes
or another process overwrote it (workbench/tracking/writes.py).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # the child pays nothing for typing at run time
    from typing import Any


def _tracked_mode(mode: Any, encoding: Any, errors: Any, newline: Any) -> tuple[str, bool] | None:
    """``(raw FileIO mode, sequential)`` for a well-formed mode that writes; None for anything else
    (reads, and malformed modes left to the real ``open`` to refuse)."""
    if not isinstance(mode, str) or len(set(mode)) != len(mode) or not set(mode) <= set("rwaxbt+"):
        return None
    kinds = [c for c in mode if c in "rwax"]
    if len(kinds) != 1 or ("b" in mode and "t" in mode) or not ("+" in mode or kinds[0] in "wax"):
        return None
    if "b" in mode and (encoding is not None or errors is not None or newline is not None):
        return None
    return kinds[0] + ("+" if "+" in mode else ""), kinds[0] in "wx" and "+" not in mode


def install_write_tracking(writes_path: str, root: str, ignored: tuple[str, ...],
                           machinery: tuple[str, ...]) -> None:
    """Make ``open`` (``builtins.open``, ``io.open``, hence ``pathlib``) record each project file this
    process writes: the file objects are the standard ``BufferedWriter``/``TextIOWrapper`` over a
    ``FileIO`` subclass that hashes what is written through it and, on close, appends one JSON line
    ``{"path", "sha256", "size"}`` to ``writes_path``. Handles that seek away from the end, truncate,
    append or read, and files whose size at close differs from the bytes seen (written by C code on
    the descriptor), are hashed by reading the file back at close. A closed file later renamed
    (``os.rename``/``os.replace``: an atomic save) gets a record under its new name too. Reads,
    file descriptors, paths outside the project or under ``ignored`` prefixes (the store, the
    interpreter) or ``machinery`` folders (site-packages, caches) go to the real ``open`` untouched."""
    import builtins
    import io

    def sha256() -> Any:
        """hashlib (OpenSSL, ~3 ms) and json (~2 ms) are imported on the first project file written,
        not when every Python child of a run starts."""
        import hashlib

        return hashlib.sha256()

    root = os.path.normpath(root)
    inside = root + os.sep
    real_open = io.open
    out = os.open(writes_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.set_inheritable(out, False)

    def reread(full: str) -> tuple[str, int]:
        digest, size = sha256(), 0
        fd = os.open(full, os.O_RDONLY)
        try:
            while chunk := os.read(fd, 1 << 20):
                digest.update(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        return digest.hexdigest(), size

    closed: dict[str, tuple[str, int]] = {}

    def emit(full: str, digest: str, size: int) -> None:
        closed[full] = (digest, size)
        import json

        line = json.dumps({"path": full, "sha256": digest, "size": size}, ensure_ascii=False)
        os.write(out, (line + "\n").encode("utf-8", "surrogateescape"))

    def renamed(event: str, args: tuple[Any, ...]) -> None:
        """A file closed here and then renamed (an atomic save: write a temporary, replace the
        target): its record follows it to the new name."""
        if event != "os.rename" or not closed:
            return
        try:
            src, dst, src_dir, dst_dir = args
            if src_dir not in (None, -1) or dst_dir not in (None, -1):
                return
            source = os.path.normpath(os.path.abspath(os.fsdecode(os.fspath(src))))
            record = closed.get(source)
            target = project_file(dst) if record is not None else None
            if record is not None and target is not None:
                emit(target, *record)
        except Exception:
            pass

    class TrackedFileIO(io.FileIO):
        def __init__(self, file: Any, mode: str, closefd: bool, opener: Any, full: str,
                     sequential: bool) -> None:
            super().__init__(file, mode, closefd, opener)
            self._wb_full = full
            self._wb_hash: Any = sha256() if sequential else None
            self._wb_count = 0

        def write(self, data: Any) -> Any:
            written = super().write(data)
            if self._wb_hash is not None and written:
                try:
                    with memoryview(data) as view:
                        self._wb_hash.update(view.cast("B")[:written])
                    self._wb_count += written
                except Exception:  # an odd buffer: read the file back at close instead
                    self._wb_hash = None
            return written

        def seek(self, pos: int, whence: int = 0) -> int:
            where = super().seek(pos, whence)
            if where != self._wb_count:
                self._wb_hash = None
            return where

        def truncate(self, size: Any = None) -> int:
            self._wb_hash = None
            return super().truncate(size)

        def close(self) -> None:
            if not self.closed:
                try:
                    self._wb_record()
                except Exception:
                    pass
            super().close()

        def _wb_record(self) -> None:
            size = os.fstat(self.fileno()).st_size
            if self._wb_hash is not None and size == self._wb_count:
                digest = self._wb_hash.hexdigest()
            else:
                digest, size = reread(self._wb_full)
            emit(self._wb_full, digest, size)

    def project_file(file: Any) -> str | None:
        if isinstance(file, int):
            return None
        path = os.fsdecode(os.fspath(file))
        full = os.path.normpath(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
        if not full.startswith(inside) or full.startswith(ignored):
            return None
        if os.path.realpath(full).startswith(ignored):
            return None
        if any(part in full for part in machinery):
            return None
        return full

    def tracked_open(file: Any, mode: str = "r", buffering: int = -1, encoding: Any = None,
                     errors: Any = None, newline: Any = None, closefd: bool = True,
                     opener: Any = None) -> Any:
        kind = _tracked_mode(mode, encoding, errors, newline)
        try:
            full = project_file(file) if kind is not None else None
        except Exception:
            full = None
        if kind is None or full is None or not isinstance(buffering, int):
            return real_open(file, mode, buffering, encoding, errors, newline, closefd, opener)
        raw = TrackedFileIO(file, kind[0], closefd, opener, full, kind[1])
        result: Any = raw
        try:
            line_buffering = False
            if buffering == 1 or (buffering < 0 and raw.isatty()):
                buffering, line_buffering = -1, True
            if buffering < 0:
                buffering = io.DEFAULT_BUFFER_SIZE
                try:
                    blksize = os.fstat(raw.fileno()).st_blksize
                except OSError:
                    blksize = 0
                if blksize > 1:
                    buffering = blksize
            if buffering == 0:
                if "b" in mode:
                    return result
                raise ValueError("can't have unbuffered text I/O")
            result = io.BufferedRandom(raw, buffering) if "+" in mode else io.BufferedWriter(raw, buffering)
            if "b" in mode:
                return result
            encoding = io.text_encoding(encoding) if hasattr(io, "text_encoding") else encoding
            result = io.TextIOWrapper(result, encoding, errors, newline, line_buffering)
            result.mode = mode
            return result
        except BaseException:
            result.close()
            raise

    tracked_open.__doc__ = real_open.__doc__
    tracked_open.__wrapped__ = real_open  # type: ignore[attr-defined]
    builtins.open = io.open = tracked_open
    sys.addaudithook(renamed)
