"""Streaming readers: one data member in, batches of :class:`RawRecord` out.

Every reader keeps memory bounded whatever the file size: JSONL and CSV read one physical line at a
time with ``readline(limit)`` (a line longer than ``max_line_bytes`` is drained in 1 MiB chunks and
reported, never held whole), Parquet reads record batches of the needed columns only, and HF datasets
iterate memory-mapped Arrow tables.

A reader either yields records (``fields`` set) or record-level problems (``reason`` set), and raises
:class:`~marketplace.errors.RejectedFileError` for problems that make the rest of the member
unreadable (an unclosed CSV quote, a corrupt Parquet page...).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import orjson

from marketplace.errors import RejectedFileError
from marketplace.ingest.params import IngestLimits
from marketplace.ingest.reasons import ReasonCode
from marketplace.ingest.sources import UTF8_BOM, FileFormat, Member, reject
from marketplace.ingest.validate import safe_excerpt

__all__ = ["RawRecord", "Reader", "make_reader"]

log = logging.getLogger(__name__)
_DRAIN_CHUNK = 1 << 20


@dataclass(slots=True)
class RawRecord:
    """One record as read: ``fields`` (a mapping) or a record-level problem (``reason``)."""

    record_index: int  # 0-based position among the records of the whole submission
    location: str  # "line 17", "row 3 (line 4)", "member a.jsonl: line 2"
    fields: dict[str, Any] | None
    reason: ReasonCode | None = None
    detail: str = ""
    excerpt: str | None = None


class Reader(Protocol):
    surrogate_reason: ReasonCode

    def field_names(self) -> list[str] | None:
        """Column names known before reading (CSV header, Parquet/HF schema), or None (JSONL)."""

    def check_types(self, columns: list[str]) -> None:
        """Reject columns that cannot hold text (Parquet/HF schema types)."""

    def batches(self, columns: list[str] | None) -> Iterator[list[RawRecord]]:
        """Batches of records; ``columns`` restricts what column readers load."""

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------------
# Bounded line reading
# ---------------------------------------------------------------------------------------------------
def iter_lines(stream: BinaryIO, max_line_bytes: int) -> Iterator[tuple[int, bytes | None, int]]:
    """``(line_number, line, n_bytes)`` with 1-based line numbers; ``line`` is None when the line has more
    than ``max_line_bytes`` bytes (its bytes were skipped with a bounded buffer)."""
    readline = stream.readline
    limit = max_line_bytes + 1
    lineno = 0
    while True:
        line = readline(limit)
        if not line:
            return
        lineno += 1
        if len(line) == limit and not line.endswith(b"\n"):
            size = len(line)
            while True:
                chunk = readline(_DRAIN_CHUNK)
                size += len(chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield lineno, None, size
            continue
        yield lineno, line, len(line)


# ---------------------------------------------------------------------------------------------------
# JSONL
# ---------------------------------------------------------------------------------------------------
class _Constant(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _Constant(name)


def classify_json_line(line: bytes) -> tuple[Any, ReasonCode | None, str]:
    """Slow path for a line the fast parser refused: parse leniently or say precisely why not."""
    nul = line.find(b"\x00")
    if nul >= 0:
        return None, ReasonCode.NUL_BYTE, f"NUL byte at offset {nul}"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, ReasonCode.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}: {exc.reason}"
    try:
        # strict=False: raw tabs/controls inside strings are then judged by the text checks.
        return json.loads(text, strict=False, parse_constant=_reject_constant), None, ""
    except _Constant as exc:
        return None, ReasonCode.NAN_LITERAL, f"{exc} is not valid JSON"
    except RecursionError:
        return None, ReasonCode.DEEPLY_NESTED, "JSON nested too deeply to parse"
    except json.JSONDecodeError as exc:
        return None, ReasonCode.INVALID_JSON, f"{exc.msg} (column {exc.colno})"
    except ValueError as exc:  # e.g. integers with more than 4300 digits
        return None, ReasonCode.INVALID_JSON, str(exc)[:200]


class JsonlReader:
    surrogate_reason = ReasonCode.INVALID_UNICODE

    def __init__(self, member: Member, limits: IngestLimits, start_index: int) -> None:
        self._member = member
        self._limits = limits
        self._start = start_index
        self._stream: BinaryIO | None = None

    def field_names(self) -> list[str] | None:
        return None

    def check_types(self, columns: list[str]) -> None:
        return None

    def batches(self, columns: list[str] | None) -> Iterator[list[RawRecord]]:
        prefix = self._member.label
        batch_size = self._limits.read_batch_size
        self._stream = stream = self._member.open_stream()
        index = self._start
        batch: list[RawRecord] = []
        loads = orjson.loads
        for lineno, line, size in iter_lines(stream, self._limits.max_line_bytes):
            if line is None:
                rec = RawRecord(index, f"{prefix}line {lineno}", None, ReasonCode.LINE_TOO_LONG,
                                f"{size} bytes > max_line_bytes {self._limits.max_line_bytes}", None)
            else:
                if lineno == 1 and line.startswith(UTF8_BOM):
                    line = line[len(UTF8_BOM):]
                if line.isspace():
                    continue
                try:
                    obj = loads(line)
                    reason, detail = None, ""
                except orjson.JSONDecodeError:
                    obj, reason, detail = classify_json_line(line)
                loc = f"{prefix}line {lineno}"
                if reason is not None:
                    rec = RawRecord(index, loc, None, reason, detail, safe_excerpt(line.rstrip(b"\r\n")))
                elif not isinstance(obj, dict):
                    rec = RawRecord(index, loc, None, ReasonCode.NOT_AN_OBJECT,
                                    f"a JSON {type(obj).__name__}, expected an object",
                                    safe_excerpt(line.rstrip(b"\r\n")))
                else:
                    rec = RawRecord(index, loc, obj)
            batch.append(rec)
            index += 1
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


# ---------------------------------------------------------------------------------------------------
# CSV / TSV
# ---------------------------------------------------------------------------------------------------
class CsvReader:
    """RFC 4180 CSV (or TSV) with a header row, parsed by the csv module in strict mode.

    Bytes are decoded with ``surrogateescape`` so invalid UTF-8 is pinned to its row instead of
    failing the whole file. A quote left open swallows the rest of the file: that rejects the file
    (``csv_unmatched_quote``, at the line where the broken row starts), as does a physical line longer
    than ``max_line_bytes``. Other malformed rows are quarantined and reading goes on.
    """

    surrogate_reason = ReasonCode.INVALID_UTF8

    def __init__(self, member: Member, limits: IngestLimits, start_index: int) -> None:
        self._member = member
        self._limits = limits
        self._start = start_index
        self._delimiter = "\t" if member.fmt is FileFormat.TSV else ","
        self._stream = member.open_stream()
        # The csv module's field limit is process-wide; a field can never exceed one line's limit
        # except inside an unclosed quote, which is exactly what it must catch.
        csv.field_size_limit(max(limits.max_line_bytes, 1024))
        self._lines = self._decoded_lines()
        self._reader = csv.reader(self._lines, delimiter=self._delimiter, strict=True)
        self._header = self._read_header()

    def _decoded_lines(self) -> Iterator[str]:
        for lineno, line, size in iter_lines(self._stream, self._limits.max_line_bytes):
            if line is None:
                raise reject(ReasonCode.CSV_LINE_TOO_LONG,
                             f"{size} bytes > max_line_bytes {self._limits.max_line_bytes}",
                             location=f"{self._member.label}line {lineno}")
            if lineno == 1 and line.startswith(UTF8_BOM):
                line = line[len(UTF8_BOM):]
            yield line.decode("utf-8", "surrogateescape")

    def _read_header(self) -> list[str]:
        where = f"{self._member.label}line 1"
        try:
            header = next(self._reader)
        except StopIteration:
            raise reject(ReasonCode.NO_RECORDS, "the CSV has no header and no rows", location=where) from None
        except csv.Error as exc:
            raise reject(ReasonCode.CSV_BAD_HEADER, f"cannot parse the header: {exc}", location=where) from exc
        names = [h.strip() for h in header]
        if any("\udc80" <= ch <= "\udcff" for h in names for ch in h):
            raise reject(ReasonCode.CSV_BAD_HEADER, "the header is not valid UTF-8", location=where)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise reject(ReasonCode.CSV_BAD_HEADER, f"duplicate column names {dupes}", location=where)
        if not any(names):
            raise reject(ReasonCode.CSV_BAD_HEADER, "the header row is empty", location=where)
        return names

    def field_names(self) -> list[str] | None:
        return list(self._header)

    def check_types(self, columns: list[str]) -> None:
        return None

    def batches(self, columns: list[str] | None) -> Iterator[list[RawRecord]]:
        prefix = self._member.label
        header = self._header
        width = len(header)
        reader = self._reader
        index = self._start
        row_no = 0
        batch: list[RawRecord] = []
        while True:
            start_line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                msg = str(exc)
                if "unexpected end of data" in msg or "field larger than field limit" in msg:
                    raise reject(ReasonCode.CSV_UNMATCHED_QUOTE, f"a quoted field is never closed ({msg})",
                                 location=f"{prefix}line {start_line}") from exc
                row_no += 1
                batch.append(RawRecord(index, f"{prefix}row {row_no} (line {start_line})", None,
                                       ReasonCode.CSV_MALFORMED_ROW, msg, None))
                index += 1
                continue
            if not row:
                continue  # blank line
            row_no += 1
            loc = f"{prefix}row {row_no} (line {start_line})"
            if len(row) != width:
                batch.append(RawRecord(index, loc, None, ReasonCode.RAGGED_ROW,
                                       f"{len(row)} fields, the header has {width}",
                                       safe_excerpt(self._delimiter.join(row))))
            else:
                batch.append(RawRecord(index, loc, dict(zip(header, row, strict=True))))
            index += 1
            if len(batch) >= self._limits.read_batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self) -> None:
        self._stream.close()


# ---------------------------------------------------------------------------------------------------
# Column-oriented: Parquet and Hugging Face datasets
# ---------------------------------------------------------------------------------------------------
def _is_text_type(arrow_type: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return bool(
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or getattr(pa.types, "is_string_view", lambda _t: False)(arrow_type)
        or pa.types.is_null(arrow_type)
    )


def _rows(columns: list[str], values: list[list[Any]], start_index: int, start_row: int,
          prefix: str) -> list[RawRecord]:
    return [
        RawRecord(start_index + i, f"{prefix}row {start_row + i + 1}", dict(zip(columns, vals, strict=True)))
        for i, vals in enumerate(zip(*values, strict=True))
    ]


class _ColumnarReader:
    """What the column-oriented readers share: an Arrow schema whose columns must hold text, and rows
    located by their 1-based number within the member."""

    surrogate_reason = ReasonCode.INVALID_UNICODE

    def __init__(self, member: Member, limits: IngestLimits, start_index: int) -> None:
        self._member = member
        self._limits = limits
        self._start = start_index
        self._where = member.label.removesuffix(": ") or member.name

    def _arrow_schema(self) -> Any:
        raise NotImplementedError

    def field_names(self) -> list[str] | None:
        return list(self._arrow_schema().names)

    def check_types(self, columns: list[str]) -> None:
        schema = self._arrow_schema()
        for name in columns:
            arrow_type = schema.field(name).type
            if not _is_text_type(arrow_type):
                raise reject(ReasonCode.WRONG_FIELD_TYPE, f"column {name!r} is {arrow_type}, expected string",
                             location=self._where)


class ParquetReader(_ColumnarReader):
    def __init__(self, member: Member, limits: IngestLimits, start_index: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().__init__(member, limits, start_index)
        self._stream = member.open_stream() if member.local_path is None else None
        try:
            source = self._stream if self._stream is not None else str(member.local_path)
            self._file = pq.ParquetFile(source)
            self._schema = self._file.schema_arrow
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise reject(ReasonCode.PARQUET_CORRUPT, f"cannot read the Parquet metadata: {exc}",
                         location=self._where) from exc

    def _arrow_schema(self) -> Any:
        return self._schema

    def batches(self, columns: list[str] | None) -> Iterator[list[RawRecord]]:
        import pyarrow as pa

        cols = columns if columns is not None else list(self._schema.names)
        row = 0
        index = self._start
        iterator = self._file.iter_batches(batch_size=self._limits.read_batch_size, columns=cols)
        while True:
            try:
                rb = next(iterator)
            except StopIteration:
                break
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise reject(ReasonCode.PARQUET_CORRUPT, f"cannot read rows after row {row}: {exc}",
                             location=self._where) from exc
            values = [rb.column(c).to_pylist() for c in cols]
            yield _rows(cols, values, index, row, self._member.label)
            row += rb.num_rows
            index += rb.num_rows

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


class HfReader(_ColumnarReader):
    """A split saved by ``datasets`` (``Dataset.save_to_disk``), read with ``load_from_disk``/``iter``."""

    def __init__(self, member: Member, limits: IngestLimits, start_index: int) -> None:
        import datasets

        super().__init__(member, limits, start_index)
        datasets.disable_progress_bars()
        try:
            ds = datasets.load_from_disk(str(member.local_path), keep_in_memory=False)
        except Exception as exc:  # datasets raises many types (FileNotFoundError, ArrowInvalid, JSON errors...)
            raise reject(ReasonCode.HF_DATASET_CORRUPT, f"datasets.load_from_disk failed: {exc}",
                         location=self._where) from exc
        if not isinstance(ds, datasets.Dataset):
            raise reject(ReasonCode.HF_DATASET_CORRUPT, f"expected a Dataset, got {type(ds).__name__}",
                         location=self._where)
        self._ds = ds

    def _arrow_schema(self) -> Any:
        return self._ds.data.schema

    def field_names(self) -> list[str] | None:
        return list(self._ds.column_names)

    def batches(self, columns: list[str] | None) -> Iterator[list[RawRecord]]:
        cols = columns if columns is not None else list(self._ds.column_names)
        ds = self._ds.select_columns(cols)
        row = 0
        index = self._start
        try:
            for batch in ds.iter(batch_size=self._limits.read_batch_size):
                values = [batch[c] for c in cols]
                n = len(values[0]) if values else 0
                yield _rows(cols, values, index, row, self._member.label)
                row += n
                index += n
        except RejectedFileError:
            raise
        except Exception as exc:
            raise reject(ReasonCode.HF_DATASET_CORRUPT, f"cannot read rows after row {row}: {exc}",
                         location=self._where) from exc

    def close(self) -> None:
        return None


def make_reader(member: Member, limits: IngestLimits, start_index: int) -> Reader:
    if member.fmt is FileFormat.JSONL:
        return JsonlReader(member, limits, start_index)
    if member.fmt in (FileFormat.CSV, FileFormat.TSV):
        return CsvReader(member, limits, start_index)
    if member.fmt is FileFormat.PARQUET:
        return ParquetReader(member, limits, start_index)
    return HfReader(member, limits, start_index)
