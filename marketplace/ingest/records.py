"""From a file to validated, normalised batches, without touching the database.

:class:`RecordStream` is shared by :func:`~marketplace.ingest.ingest.ingest_file` (which writes the
batches) and :func:`read_normalised_records` (campaign target data, which only needs the texts). It
resolves the field mapping, validates every record, keeps the tallies and makes the file-level
decision at the end (:meth:`RecordStream.finish`): no records, too many quarantined, schema drift.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from marketplace.ingest.mapping import ResolvedMapping, resolve_mapping
from marketplace.ingest.params import FieldMapping, IngestLimits
from marketplace.ingest.readers import RawRecord, Reader, make_reader
from marketplace.ingest.reasons import ReasonCode
from marketplace.ingest.sources import FileFormat, Source, open_source, reject
from marketplace.ingest.validate import NormalisedRecord, Problem, validate_fields

__all__ = ["QuarantinedRow", "RecordStream", "ValidatedBatch", "read_normalised_records"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QuarantinedRow:
    record_index: int
    location: str
    reason: ReasonCode
    detail: str
    excerpt: str | None


@dataclass(slots=True)
class ValidatedBatch:
    records: list[NormalisedRecord]
    quarantined: list[QuarantinedRow]


@dataclass
class _Drift:
    """Records that lack the mapped fields but carry other ones: the signature of schema drift."""

    count: int = 0
    keysets: Counter[frozenset[str]] = field(default_factory=Counter)
    first_location: str | None = None


class RecordStream:
    """Validated batches of one :class:`Source` plus the tallies for the file-level decision."""

    def __init__(self, source: Source, mapping: FieldMapping, limits: IngestLimits) -> None:
        self.source = source
        self.requested = mapping
        self.limits = limits
        self.resolved: ResolvedMapping | None = None
        self.n_records = 0
        self.n_quarantined = 0
        self.reasons: Counter[str] = Counter()
        self._first_location: dict[str, str] = {}
        self._drift = _Drift()

    # ---- mapping ----
    def _resolve_from_names(self, reader: Reader, names: list[str], where: str) -> list[str]:
        if self.resolved is None:
            self.resolved = resolve_mapping(self.requested, Counter(names), 1, where)
        else:
            missing = [f for f in self.resolved.fields if f not in names]
            if missing:
                raise reject(ReasonCode.SCHEMA_DRIFT,
                             f"columns {missing} are missing here (columns: {names[:20]}) although earlier "
                             f"members have them", location=where)
        columns = self.resolved.wanted_columns(names)
        reader.check_types(columns)
        return columns

    def _resolve_from_records(self, raw: list[RawRecord], where: str) -> None:
        objects = [r.fields for r in raw if r.fields is not None]
        if not objects:
            return
        counts: Counter[str] = Counter()
        for obj in objects:
            counts.update(obj.keys())
        self.resolved = resolve_mapping(self.requested, counts, len(objects), where)

    # ---- batches ----
    def batches(self) -> Iterator[ValidatedBatch]:
        for member in self.source.members:
            where = member.label.removesuffix(": ") or member.name
            reader = make_reader(member, self.limits, self.n_records)
            try:
                names = reader.field_names()
                columns = self._resolve_from_names(reader, names, where) if names is not None else None
                for raw in reader.batches(columns):
                    if self.resolved is None:
                        self._resolve_from_records(raw, where)
                    yield self._validate(raw, reader)
            finally:
                reader.close()

    def _validate(self, raw: list[RawRecord], reader: Reader) -> ValidatedBatch:
        good: list[NormalisedRecord] = []
        bad: list[QuarantinedRow] = []
        mapping = self.resolved
        limits = self.limits
        surrogate_reason = reader.surrogate_reason
        for rec in raw:
            if rec.fields is None or mapping is None:
                assert rec.reason is not None  # records without fields always carry their problem
                bad.append(QuarantinedRow(rec.record_index, rec.location, rec.reason, rec.detail, rec.excerpt))
                continue
            result = validate_fields(rec.fields, mapping, limits, record_index=rec.record_index,
                                     location=rec.location, surrogate_reason=surrogate_reason)
            if isinstance(result, Problem):
                bad.append(QuarantinedRow(rec.record_index, rec.location, result.reason, result.detail,
                                          _excerpt_of(rec.fields, mapping)))
                if result.reason is ReasonCode.MISSING_FIELD and any(k not in mapping.fields for k in rec.fields):
                    d = self._drift
                    d.count += 1
                    if len(d.keysets) < 100:
                        d.keysets[frozenset(rec.fields)] += 1
                    d.first_location = d.first_location or rec.location
            else:
                good.append(result)
        self.n_records += len(raw)
        self.n_quarantined += len(bad)
        for row in bad:
            code = row.reason.value
            self.reasons[code] += 1
            self._first_location.setdefault(code, row.location)
        return ValidatedBatch(good, bad)

    # ---- file-level decision ----
    @property
    def n_accepted(self) -> int:
        return self.n_records - self.n_quarantined

    def finish(self) -> None:
        """Raise the file-level rejection the tallies call for, if any."""
        where = self.source.path.name
        if self.n_records == 0:
            raise reject(ReasonCode.NO_RECORDS, "the file holds no data records", location=where)
        fraction = self.n_quarantined / self.n_records
        if fraction <= self.limits.max_quarantine_fraction and self.n_accepted > 0:
            return
        d = self._drift
        if self.resolved is not None and d.count >= 0.5 * self.n_quarantined and d.keysets:
            keys = sorted(d.keysets.most_common(1)[0][0])
            raise reject(
                ReasonCode.SCHEMA_DRIFT,
                f"{d.count} of {self.n_records} records have fields {keys[:20]} instead of "
                f"{list(self.resolved.fields)}",
                location=d.first_location,
            )
        top = ", ".join(f"{code} x{n} (first at {self._first_location[code]})"
                        for code, n in self.reasons.most_common(5))
        raise reject(
            ReasonCode.TOO_MANY_QUARANTINED,
            f"{self.n_quarantined} of {self.n_records} records quarantined ({fraction:.0%} > "
            f"{self.limits.max_quarantine_fraction:.0%}): {top}",
            location=where,
        )


def _excerpt_of(fields: dict[str, object], mapping: ResolvedMapping) -> str | None:
    from marketplace.ingest.validate import safe_excerpt

    for name in mapping.fields:
        if name in fields:
            return safe_excerpt(fields[name])
    return safe_excerpt(fields)


def read_normalised_records(
    path: str | os.PathLike[str],
    *,
    fmt: FileFormat | str | None = None,
    mapping: FieldMapping | None = None,
    limits: IngestLimits | None = None,
) -> list[NormalisedRecord]:
    """Validate and normalise a file exactly like ingestion does, without touching the database.

    Returns the accepted records in file order (``record_index``, ``text``, ``prompt_chars``,
    ``content_hash``, ``source``, ``licence``, ``location``). Bad records are dropped (and logged);
    the file is rejected with :class:`~marketplace.errors.RejectedFileError` under the same rules
    as ingestion (unreadable, over the limits, too many bad records...). Everything is returned in
    one list, so this is meant for campaign target data, not multi-GB provider files.
    """
    limits = limits or IngestLimits()
    source = open_source(path, fmt, limits)
    stream = RecordStream(source, mapping or FieldMapping(), limits)
    out: list[NormalisedRecord] = []
    for batch in stream.batches():
        out.extend(batch.records)
    stream.finish()
    if stream.n_quarantined:
        log.warning("%s: %d of %d records dropped: %s", source.path.name, stream.n_quarantined,
                    stream.n_records, dict(stream.reasons))
    return out
