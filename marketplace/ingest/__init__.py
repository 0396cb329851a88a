"""Ingestion of provider datasets: read, validate, normalise, hash, deduplicate, quarantine.

Entry points:

``ingest_one_file(factory, path, provider_name, options=IngestOptions(...))``
    -> :class:`FileIngestResult`. One file in a transaction of its own, retried on transient
    conflicts; a refused file becomes a ``rejected`` result. The code path of ``marketplace ingest``
    and of the ``ingest`` flow, so both report the same shape (:meth:`FileIngestResult.as_dict`).

``ingest_file(session, path, provider_name, *, fmt=None, mapping=None, limits=None, dedup_params=None)``
    -> :class:`IngestReport`. Reads a JSONL / CSV / TSV / Parquet file (optionally ``.gz``), a ``.zip``
    of such files, or a folder written by ``datasets.Dataset.save_to_disk``, in the caller's
    transaction. A file is accepted whole (submission + samples + quarantined records) or rejected
    whole with :class:`~marketplace.errors.RejectedFileError` (``reason_code`` from
    :class:`ReasonCode`, ``location``, and how to fix it in the message); the caller rolls back.
    Exact duplicates (same normalised content hash) and near-duplicates (MinHash LSH, see
    :class:`DedupParams`) are linked to their first owner, in the same file, the same provider or any
    other. Re-ingesting the same bytes for the same provider returns the existing submission
    (``report.existing``); the same bytes from another provider become a ``copy`` submission whose
    samples are all duplicates. Pass ``dedup_params=DedupParams(...)`` to link near-duplicates;
    ``None`` links exact duplicates only.

``read_normalised_records(path, *, fmt=None, mapping=None, limits=None)`` -> ``list[NormalisedRecord]``
    The same reading, validation and normalisation without a database (campaign target data): each
    record has ``record_index``, ``location``, ``text``, ``prompt_chars``, ``content_hash``,
    ``source`` and ``licence``; the same file-level rejections apply.

Parameters are frozen objects built at the edge: :class:`IngestLimits` (``from_settings``),
:class:`FieldMapping` (``text_field`` or ``prompt_field`` + ``response_field``, default auto-detect),
:class:`DedupParams` (``from_settings``).
"""

from marketplace.ingest.ingest import IngestReport, ingest_file, submission_params_sha256
from marketplace.ingest.mapping import AUTO_CANDIDATES
from marketplace.ingest.normalise import content_hash, normalise_text
from marketplace.ingest.one_file import FileIngestResult, IngestOptions, ingest_one_file, summary_rows
from marketplace.ingest.params import DedupParams, FieldMapping, IngestLimits
from marketplace.ingest.reasons import FILE_LEVEL_REASONS, FIX_HINTS, RECORD_LEVEL_REASONS, ReasonCode
from marketplace.ingest.records import read_normalised_records
from marketplace.ingest.sources import SUPPORTED_SUFFIXES, FileFormat, list_ingestible
from marketplace.ingest.validate import NormalisedRecord

__all__ = [
    "AUTO_CANDIDATES",
    "FILE_LEVEL_REASONS",
    "FIX_HINTS",
    "RECORD_LEVEL_REASONS",
    "SUPPORTED_SUFFIXES",
    "DedupParams",
    "FieldMapping",
    "FileFormat",
    "FileIngestResult",
    "IngestLimits",
    "IngestOptions",
    "IngestReport",
    "NormalisedRecord",
    "ReasonCode",
    "content_hash",
    "ingest_file",
    "ingest_one_file",
    "list_ingestible",
    "normalise_text",
    "read_normalised_records",
    "submission_params_sha256",
    "summary_rows",
]
