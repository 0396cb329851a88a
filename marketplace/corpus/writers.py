"""Write provider files (JSONL, CSV, Parquet) byte-for-byte reproducibly, and hash them.

A row is a dict of column -> str | None; a key absent from the dict is a *missing field* (JSONL
omits it; CSV and Parquet, which have fixed columns, write an empty cell / a null). Everything that
could vary between runs is fixed: key order, UTF-8 without ASCII escaping, ``\\n`` line ends,
Parquet compression and row-group size, no pandas metadata, no timestamps.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from marketplace.corpus.providers import FileFormat

__all__ = ["Row", "sha256_file", "write_rows"]

Row = dict[str, str | None]
PARQUET_ROW_GROUP = 1000


def write_rows(path: Path, fmt: FileFormat, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """Write ``rows`` to ``path`` in ``fmt`` with ``columns`` in that order."""
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8", newline="\n") as fh:
            for row in rows:
                fh.write(json.dumps({c: row[c] for c in columns if c in row}, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            writer.writerow(columns)
            writer.writerows([[row.get(c) or "" for c in columns] for row in rows])
    elif fmt == "parquet":
        table = pa.table({c: pa.array([row.get(c) for row in rows], type=pa.string()) for c in columns})
        pq.write_table(table, path, compression="zstd", row_group_size=PARQUET_ROW_GROUP,
                       write_statistics=False, store_schema=False)
    else:  # pragma: no cover - FileSpec validates the extension
        raise ValueError(f"unknown format {fmt!r}")


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
