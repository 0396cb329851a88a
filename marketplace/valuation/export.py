"""Export a label set as JSONL, CSV or Parquet (chosen by the output file's extension).

Columns: sample_id, provider_id, provider, text, score — one row per label, in sample-id order.
Rows are streamed from SQL in chunks and written to a temporary file renamed into place, so a
failed export never leaves a half-written file under the requested name.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.db import Label, LabelSet, Provider, Sample
from marketplace.errors import ConfigError, NotFoundError
from marketplace.outputs import atomic_output, check_output_file
from marketplace.reports.csv_safe import write_csv

__all__ = ["EXPORT_FORMATS", "export_labels"]

log = logging.getLogger(__name__)

EXPORT_FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}
COLUMNS = ("sample_id", "provider_id", "provider", "text", "score")
_CHUNK = 5000


def _rows(session: Session, label_set_id: int) -> Iterator[list[dict[str, Any]]]:
    stmt = (
        select(Label.sample_id, Sample.provider_id, Provider.name, Sample.text, Label.score)
        .join(Sample, Sample.id == Label.sample_id)
        .join(Provider, Provider.id == Sample.provider_id)
        .where(Label.label_set_id == label_set_id)
        .order_by(Label.sample_id)
        .execution_options(yield_per=_CHUNK)
    )
    for part in session.execute(stmt).partitions(_CHUNK):
        yield [dict(zip(COLUMNS, row, strict=True)) for row in part]


def export_labels(session: Session, label_set_id: int, out: Path) -> dict[str, Any]:
    """Write every label of ``label_set_id`` to ``out``; returns {path, format, rows}."""
    out = Path(out)
    fmt = EXPORT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ConfigError(f"cannot export to {out.name}: use a .jsonl, .csv or .parquet file name")
    check_output_file(out)
    if session.get(LabelSet, label_set_id) is None:
        raise NotFoundError(f"label set {label_set_id} does not exist")
    with atomic_output(out) as tmp:  # marketplace/outputs.py: no link followed, nothing half-written
        n = _write_labels(session, label_set_id, fmt, tmp)
    log.info("exported %d labels of label set %d to %s", n, label_set_id, out)
    return {"path": str(out), "format": fmt, "rows": n}


def _write_labels(session: Session, label_set_id: int, fmt: str, tmp: Path) -> int:
    n = 0
    if fmt == "jsonl":
        with tmp.open("w", encoding="utf-8") as fh:
            for chunk in _rows(session, label_set_id):
                fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in chunk)
                n += len(chunk)
    elif fmt == "csv":
        write_csv(tmp, COLUMNS, [])
        for chunk in _rows(session, label_set_id):
            write_csv(tmp, None, ([r[c] for c in COLUMNS] for r in chunk), append=True)
            n += len(chunk)
    else:
        schema = pa.schema([("sample_id", pa.int64()), ("provider_id", pa.int64()), ("provider", pa.string()),
                            ("text", pa.large_string()), ("score", pa.float64())])
        with pq.ParquetWriter(tmp, schema) as writer:
            for chunk in _rows(session, label_set_id):
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                n += len(chunk)
    return n
