"""Exports for buyers and auditors: every scored sample, and the top-valued unique samples.

Format by the output's extension: ``.jsonl``, ``.csv`` or ``.parquet``. Rows are streamed in batches
(a pool of millions never sits in memory whole). Which scores: those of an explicit model version,
or by default of the version used by the campaign's latest complete score run.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from marketplace.db import ApproximatorVersion, Provider, RunStatus, Sample, Score, ScoreRun
from marketplace.db.eligibility import is_first_owner
from marketplace.errors import ConfigError, NotFoundError, ValidationError
from marketplace.outputs import atomic_output, check_output_file
from marketplace.reports.csv_safe import write_frame

__all__ = ["ExportResult", "export_scores", "output_format", "resolve_scored_version", "select_top"]

log = logging.getLogger(__name__)

Format = Literal["jsonl", "csv", "parquet"]
_FORMATS: dict[str, Format] = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class ExportResult:
    path: str
    format: str
    n_rows: int
    model_name: str
    model_version: str


def output_format(path: str | Path) -> Format:
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise ConfigError(f"cannot tell the format of {path}; name it *.jsonl, *.csv or *.parquet")
    return _FORMATS[suffix]


def resolve_scored_version(session: Session, campaign_id: int, version: str | None = None) -> ApproximatorVersion:
    """An explicit version of the campaign's model, else the one of the latest complete score run."""
    if version is not None:
        row = session.scalar(
            select(ApproximatorVersion).where(
                ApproximatorVersion.campaign_id == campaign_id, ApproximatorVersion.version == str(version)
            ).order_by(ApproximatorVersion.id.desc()).limit(1)
        )
        if row is None:
            raise NotFoundError(f"campaign {campaign_id} has no approximator version {version}")
        return row
    row = session.scalar(
        select(ApproximatorVersion)
        .join(ScoreRun, ScoreRun.approximator_version_id == ApproximatorVersion.id)
        .where(ScoreRun.campaign_id == campaign_id, ScoreRun.status == RunStatus.COMPLETE)
        .order_by(ScoreRun.id.desc())
        .limit(1)
    )
    if row is None:
        raise NotFoundError(f"campaign {campaign_id} has no complete score run; run `marketplace score CAMPAIGN` first")
    return row


def _scored_rows(version: ApproximatorVersion) -> Select[Any]:
    return (
        select(
            Sample.id.label("sample_id"),
            Provider.name.label("provider"),
            Sample.submission_id,
            Sample.text,
            Sample.prompt_chars,
            Sample.duplicate_of_id,
            Score.score,
            Score.score_std,
        )
        .join(Score, Score.sample_id == Sample.id)
        .join(Provider, Provider.id == Sample.provider_id)
        .where(Score.approximator_version_id == version.id)
    )


def _batches(
    session: Session, stmt: Select[Any], version: ApproximatorVersion, batch_rows: int
) -> Iterator[pd.DataFrame]:
    result = session.execute(stmt.execution_options(yield_per=batch_rows))
    for part in result.partitions(batch_rows):
        df = pd.DataFrame([r._asdict() for r in part])
        df["model_name"] = version.model_name
        df["model_version"] = version.version
        yield df


class _Writer:
    """Streams batches into ``tmp``, the temporary file of :func:`marketplace.outputs.atomic_output`."""

    def __init__(self, tmp: Path, fmt: Format) -> None:
        self.fmt = fmt
        self.n_rows = 0
        self._pq: pq.ParquetWriter | None = None
        self._tmp = tmp

    def write(self, df: pd.DataFrame) -> None:
        if self.fmt == "parquet":
            table = pa.Table.from_pandas(df, preserve_index=False, schema=self._schema(df))
            if self._pq is None:
                self._pq = pq.ParquetWriter(self._tmp, table.schema)
            self._pq.write_table(table)
        elif self.fmt == "csv":
            write_frame(self._tmp, df, header=self.n_rows == 0, append=True)
        else:
            # json.dumps writes floats with repr (exact round trip); pandas' writer stops at 15 digits.
            clean = df.astype(object).where(df.notna(), None)
            with open(self._tmp, "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in clean.to_dict("records"))
        self.n_rows += len(df)

    def _schema(self, df: pd.DataFrame) -> pa.Schema | None:
        if self._pq is not None:
            return self._pq.schema
        # Nullable integer columns must not flip between int and float from one batch to the next.
        fields = []
        for name in df.columns:
            if name in ("prompt_chars", "duplicate_of_id", "submission_id", "sample_id"):
                fields.append(pa.field(name, pa.int64()))
            elif name in ("score", "score_std"):
                fields.append(pa.field(name, pa.float64()))
            else:
                fields.append(pa.field(name, pa.string()))
        return pa.schema(fields)

    def close(self, empty_columns: list[str]) -> None:
        if self.n_rows == 0:
            self.write(pd.DataFrame({c: pd.Series([], dtype=object) for c in empty_columns}))
        if self._pq is not None:
            self._pq.close()


_EXPORT_COLUMNS = ["sample_id", "provider", "submission_id", "text", "prompt_chars", "duplicate_of_id", "score",
                   "score_std", "model_name", "model_version"]


def export_scores(
    session: Session, campaign_id: int, out: str | Path, *, version: str | None = None, batch_rows: int = 20_000
) -> ExportResult:
    """Write every sample scored by the version: id, provider, text, score (+ spread), model version."""
    path = Path(out)
    fmt = output_format(path)
    check_output_file(path)
    row = resolve_scored_version(session, campaign_id, version)
    with atomic_output(path) as tmp:
        writer = _Writer(tmp, fmt)
        for df in _batches(session, _scored_rows(row).order_by(Sample.id), row, batch_rows):
            writer.write(df[_EXPORT_COLUMNS])
        writer.close(_EXPORT_COLUMNS)
    log.info("exported %d scores of %s v%s to %s", writer.n_rows, row.model_name, row.version, path)
    return ExportResult(str(path), fmt, writer.n_rows, row.model_name, row.version)


_SELECT_COLUMNS = ["sample_id", "text", "prompt", "response", "score", "provider", "model_name", "model_version"]


def select_top(
    session: Session,
    campaign_id: int,
    fraction: float,
    out: str | Path,
    *,
    version: str | None = None,
    batch_rows: int = 20_000,
) -> ExportResult:
    """Write the ⌈fraction · n⌉ highest-scored first-owner samples (ties: lower sample id first) as a
    training set: text (and prompt/response where the record has them), score, provider."""
    if not 0.0 < fraction <= 1.0:
        raise ValidationError(f"--top {fraction} must be a fraction in (0, 1], e.g. 0.1 for the top 10%")
    path = Path(out)
    fmt = output_format(path)
    check_output_file(path)
    row = resolve_scored_version(session, campaign_id, version)
    base = _scored_rows(row).where(is_first_owner())
    n_unique = int(session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    k = math.ceil(fraction * n_unique)
    stmt = base.order_by(Score.score.desc(), Sample.id).limit(k)
    with atomic_output(path) as tmp:
        writer = _Writer(tmp, fmt)
        for df in _batches(session, stmt, row, batch_rows):
            has_split = df["prompt_chars"].notna()
            cut = df["prompt_chars"].fillna(0).astype(int)
            df["prompt"] = [t[:c] if s else None for t, c, s in zip(df["text"], cut, has_split, strict=True)]
            df["response"] = [t[c + 1 :] if s else None for t, c, s in zip(df["text"], cut, has_split, strict=True)]
            writer.write(df[_SELECT_COLUMNS])
        writer.close(_SELECT_COLUMNS)
    log.info("selected the top %d of %d unique scored samples (%.1f%%) into %s", writer.n_rows, n_unique,
             100 * fraction, path)
    return ExportResult(str(path), fmt, writer.n_rows, row.model_name, row.version)
