"""Read ground-truth labels from a CSV file for ``workbench feedback DEPLOYMENT labels.csv``.

The file has a header with a request id column (``request_id``, ``id`` or ``request``) and a label
column (``label``, ``y``, ``target`` or ``truth``), and optionally ``row_index`` for batch requests.
Labels that read as numbers are stored as numbers, others as text.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from workbench.errors import UsageError

ID_COLUMNS = ("request_id", "id", "request")
LABEL_COLUMNS = ("label", "y", "target", "truth")


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def read_labels(path: Path) -> list[tuple[str, int, Any]]:
    """``(request_id, row_index, label)`` for each line of the file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip().lower() for h in reader.fieldnames or []]
            rows = list(reader)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}", "give a CSV file of labels") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a CSV file ({exc})", "save it as UTF-8 CSV") from None
    id_col = next((c for c in ID_COLUMNS if c in header), None)
    label_col = next((c for c in LABEL_COLUMNS if c in header), None)
    if id_col is None or label_col is None:
        raise UsageError(
            f"{path}: needs a request id column ({'/'.join(ID_COLUMNS)}) and a label column "
            f"({'/'.join(LABEL_COLUMNS)}); found {', '.join(header) or 'no header'}",
            "e.g. a header line 'request_id,label'",
        )
    names = {h.strip().lower(): h for h in reader.fieldnames or []}
    labels: list[tuple[str, int, Any]] = []
    for number, row in enumerate(rows, start=2):
        rid = (row.get(names[id_col]) or "").strip()
        raw = (row.get(names[label_col]) or "").strip()
        if not rid or raw == "":
            raise UsageError(f"{path}:{number}: a request id and a label are both needed",
                             "fill or remove the line")
        index_text = (row.get(names["row_index"]) or "0").strip() if "row_index" in names else "0"
        if not index_text.isdigit():
            raise UsageError(f"{path}:{number}: row_index '{index_text}' is not a number", "give 0, 1, 2 ...")
        labels.append((rid, int(index_text), _number(raw)))
    return labels
