"""Comparing trees: identical sub-trees (same hash) are skipped without being read.

Works on any two tree hashes a :class:`~workbench.versioning.trees.TreeReader` can load, so the
working folder (scanned into in-memory trees) compares the same way as two stored snapshots.
"""

from __future__ import annotations

from workbench.versioning.models import Change
from workbench.versioning.trees import DIR, Item, TreeReader

BINARY_SNIFF = 8192


def diff_trees(reader: TreeReader, a: str | None, b: str | None, prefix: str = "") -> list[Change]:
    """Changes that turn tree ``a`` into tree ``b`` (None: an empty tree), sorted by path."""
    out: list[Change] = []
    _diff(reader, a, b, prefix, out)
    out.sort(key=lambda c: c.path)
    return out


def _all(reader: TreeReader, digest: str, prefix: str, change: str, out: list[Change]) -> None:
    for path, item in reader.walk(digest, prefix):
        size = item[3]
        out.append(Change(path, change, size if change == "added" else 0,
                          size if change == "deleted" else 0))


def _diff(reader: TreeReader, a: str | None, b: str | None, prefix: str, out: list[Change]) -> None:
    if a == b:
        return
    if a is None:
        _all(reader, str(b), prefix, "added", out)
        return
    if b is None:
        _all(reader, a, prefix, "deleted", out)
        return
    left = {it[0]: it for it in reader.items(a)}
    right = {it[0]: it for it in reader.items(b)}
    for name in left.keys() | right.keys():
        old, new = left.get(name), right.get(name)
        path = prefix + name
        if old is not None and new is not None and old == new:
            continue
        old_dir = old is not None and old[1] == DIR
        new_dir = new is not None and new[1] == DIR
        if old_dir or new_dir:
            if old_dir and new_dir:
                _diff(reader, old[4], new[4], path + "/", out)  # type: ignore[index]
                continue
            _diff(reader, old[4] if old_dir else None,  # type: ignore[index]
                  new[4] if new_dir else None, path + "/", out)  # type: ignore[index]
            if not old_dir and old is not None:
                out.append(Change(path, "deleted", 0, old[3]))
            if not new_dir and new is not None:
                out.append(Change(path, "added", new[3], 0))
            continue
        if old is None:
            out.append(Change(path, "added", _size(new), 0))
        elif new is None:
            out.append(Change(path, "deleted", 0, old[3]))
        else:
            out.append(Change(path, "modified", new[3], old[3]))


def _size(item: Item | None) -> int:
    return item[3] if item is not None else 0


def is_binary(data: bytes) -> bool:
    if b"\0" in data[:BINARY_SNIFF]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def unified(old: bytes | None, new: bytes | None, path: str, old_label: str, new_label: str) -> str:
    """A unified diff of one file's two versions ("Binary files differ" when either is not text)."""
    if old == new:
        return ""
    if (old is not None and is_binary(old)) or (new is not None and is_binary(new)):
        return f"Binary files {old_label}/{path} and {new_label}/{path} differ\n"
    import difflib

    a = old.decode("utf-8").splitlines(keepends=True) if old is not None else []
    b = new.decode("utf-8").splitlines(keepends=True) if new is not None else []
    lines = difflib.unified_diff(
        a, b, f"{old_label}/{path}" if old is not None else "/dev/null",
        f"{new_label}/{path}" if new is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)
