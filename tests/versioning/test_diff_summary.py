"""The per-file diff summary shared by ``workbench diff A B -- PATH`` and the TUI."""

from __future__ import annotations

from workbench.versioning.blobs import hash_bytes
from workbench.versioning.diff_summary import FileDiff, file_diff, table_shape


def test_table_shape_counts_data_rows_and_header_columns() -> None:
    assert table_shape(b"a,b,c\n1,2,3\n\n4,5,6\n", ",") == (2, 3)
    assert table_shape(b"a\tb\n1\t2\n", "\t") == (1, 2)
    assert table_shape(b"", ",") == (0, 0)


def test_csv_gets_rows_columns_and_size() -> None:
    kind, text = file_diff("t.csv", b"a,b\n1,2\n", b"a,b,c\n1,2,3\n4,5,6\n", "x", "y")
    assert kind == "table"
    assert [line.split() for line in text.splitlines()[1:3]] == [
        ["rows", "1", "->", "2", "(+1)"], ["columns", "2", "->", "3", "(+1)"]]


def test_binary_gets_size_and_hash_and_an_added_file_has_no_old_hash() -> None:
    new = b"\0" * 10
    kind, text = file_diff("m.bin", None, new, "", "y")
    assert kind == "binary"
    assert "size 0 -> 10 bytes (+10)" in text
    assert f"hash - -> {hash_bytes(new)[:16]}" in text


def test_text_keeps_the_unified_diff_and_equal_versions_say_nothing() -> None:
    kind, text = file_diff("n.txt", b"one\n", b"two\n", "a1", "b2")
    assert kind == "text" and "-one" in text and "+two" in text and "a1/n.txt" in text
    assert file_diff("n.txt", b"same", b"same", "a", "b") == FileDiff("text", "")
