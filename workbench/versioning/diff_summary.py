"""How one file changed between two versions, for people: a unified diff for text, a summary where
a line diff does not serve.

- CSV and TSV files (under 64 MiB): rows, columns and size before and after; a line diff of a
  million-row table is noise.
- Binary files (a NUL byte or invalid UTF-8 in the first 8 KiB, as :func:`diff.is_binary`): size
  and content hash (BLAKE3) before and after.
- Text: the unified diff of :func:`workbench.versioning.diff.unified`.

Used by ``ws.versions.file_diff`` and so by both ``workbench diff A B -- PATH`` and the TUI's
History and Compare screens. No Textual or Rich here.
"""

from __future__ import annotations

from typing import NamedTuple

from workbench.versioning.diff import is_binary, unified

TABLE_SUFFIXES = (".csv", ".tsv")
TABLE_LIMIT = 64 << 20
"""Larger tables get a binary-style summary (size and hash) instead of being parsed."""


class FileDiff(NamedTuple):
    """``kind`` is ``text`` (``text`` is a unified diff), ``table`` or ``binary`` (a summary)."""

    kind: str
    text: str


def is_text(data: bytes | None) -> bool:
    """Absent or text (UTF-8 without NUL bytes)."""
    return data is None or not is_binary(data)


def table_shape(data: bytes, sep: str) -> tuple[int, int]:
    """(data rows, columns) of a delimited text file: blank lines skipped, the first line is the header."""
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    cols = len(lines[0].split(sep)) if lines else 0
    return max(0, len(lines) - 1), cols


def table_summary(path: str, old: bytes, new: bytes) -> str:
    sep = "\t" if path.lower().endswith(".tsv") else ","
    (r0, c0), (r1, c1) = table_shape(old, sep), table_shape(new, sep)
    return (f"{path}\nrows    {r0:>10,} -> {r1:,} ({r1 - r0:+,})\n"
            f"columns {c0:>10,} -> {c1:,} ({c1 - c0:+,})\nsize    {len(old):>10,} -> {len(new):,} bytes\n")


def binary_summary(path: str, old: bytes | None, new: bytes | None) -> str:
    from workbench.versioning.blobs import hash_bytes

    size0, size1 = len(old or b""), len(new or b"")
    hash0 = hash_bytes(old)[:16] if old is not None else "-"
    hash1 = hash_bytes(new)[:16] if new is not None else "-"
    return (f"binary file {path}\nsize {size0:,} -> {size1:,} bytes ({size1 - size0:+,})\n"
            f"hash {hash0} -> {hash1}\n")


def file_diff(path: str, old: bytes | None, new: bytes | None, old_label: str, new_label: str) -> FileDiff:
    """PATH's two versions (None: absent on that side) as a diff or a summary, by the rules above."""
    if old == new:
        return FileDiff("text", "")
    size = max(len(old or b""), len(new or b""))
    if path.lower().endswith(TABLE_SUFFIXES) and size < TABLE_LIMIT and is_text(old) and is_text(new):
        return FileDiff("table", table_summary(path, old or b"", new or b""))
    if not (is_text(old) and is_text(new)):
        return FileDiff("binary", binary_summary(path, old, new))
    return FileDiff("text", unified(old, new, path, old_label, new_label))
