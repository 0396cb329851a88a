"""Frozen, validated parameter objects for ingestion.

The edge (CLI, tasks) builds them from :class:`~marketplace.settings.Settings` with ``from_settings``;
the core only ever sees these objects. Their :meth:`~_Params.sha256` is stamped on what they produce
(``submissions.params_sha256``, ``near_dup_indexes.params_sha256``) so that outputs made with other
parameters can be told apart.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from marketplace.settings import Settings

__all__ = ["MAX_METADATA_CHARS", "DedupParams", "FieldMapping", "IngestLimits"]

# Sample.source / Sample.licence are String(200).
MAX_METADATA_CHARS = 200


READ_BATCH_RECORDS = 5000  # records per read batch: the reader's memory bound, with IngestLimits.max_text_chars


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def sha256(self) -> str:
        """Hash of the canonical JSON of every field (stable across processes and field order)."""
        payload = json.dumps({"kind": type(self).__name__, **self.model_dump(mode="json")}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    @classmethod
    def _from_settings(cls, settings: Settings, fields: dict[str, str], overrides: dict[str, Any]) -> Self:
        """``fields``: parameter name -> Settings attribute; ``overrides`` win over the settings."""
        values: dict[str, Any] = {name: getattr(settings, attr) for name, attr in fields.items()}
        return cls(**{**values, **overrides})


class IngestLimits(_Params):
    """What a provider file may be. Every limit guards against one kind of hostile or broken input.

    Sizes are in bytes, text lengths in Unicode code points (after normalisation).
    """

    max_file_bytes: int = Field(default=4 * 1024**3, gt=0, description="On-disk size (compressed size for archives).")
    max_uncompressed_bytes: int = Field(default=16 * 1024**3, gt=0, description="Decompressed bytes of .gz/.zip.")
    max_compression_ratio: float = Field(default=200.0, gt=1.0, description="Decompressed / compressed bytes.")
    ratio_floor_bytes: int = Field(
        default=1024**2, ge=0, description="The ratio limit only applies past this many decompressed bytes."
    )
    max_archive_members: int = Field(default=1000, gt=0)
    min_text_chars: int = Field(default=16, ge=1)
    max_text_chars: int = Field(default=100_000, gt=1)
    max_line_bytes: int = Field(default=8 * 1024**2, gt=0, description="One JSONL line / CSV physical line.")
    max_quarantine_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    batch_size: int = Field(default=20_000, gt=0, description=(
        "Records per database round trip (a write group); files are read and validated in batches of at most "
        f"{READ_BATCH_RECORDS} records."))

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min_text_chars > self.max_text_chars:
            raise ValueError(f"min_text_chars ({self.min_text_chars}) > max_text_chars ({self.max_text_chars})")
        return self

    @property
    def read_batch_size(self) -> int:
        """Records per read and validation batch (batches are joined into write groups of ``batch_size``)."""
        return min(self.batch_size, READ_BATCH_RECORDS)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> IngestLimits:
        same_name = ("max_file_bytes", "max_uncompressed_bytes", "max_compression_ratio", "max_archive_members",
                     "min_text_chars", "max_text_chars", "max_line_bytes", "max_quarantine_fraction")
        return cls._from_settings(settings, {**{n: n for n in same_name}, "batch_size": "ingest_batch_size"},
                                  overrides)


class FieldMapping(_Params):
    """Which record fields hold the text: ``text_field``, or ``prompt_field`` + ``response_field``.

    All ``None`` means auto-detect (see :data:`marketplace.ingest.mapping.AUTO_CANDIDATES`).
    """

    text_field: str | None = None
    prompt_field: str | None = None
    response_field: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        pr = (self.prompt_field is not None, self.response_field is not None)
        if self.text_field is not None and any(pr):
            raise ValueError("give either text_field or prompt_field + response_field, not both")
        if pr[0] != pr[1]:
            raise ValueError("prompt_field and response_field go together: give both or neither")
        for name in (self.text_field, self.prompt_field, self.response_field):
            if name is not None and not name.strip():
                raise ValueError("field names must not be empty")
        if self.prompt_field is not None and self.prompt_field == self.response_field:
            raise ValueError("prompt_field and response_field must differ")
        return self

    @property
    def is_auto(self) -> bool:
        return self.text_field is None and self.prompt_field is None


class DedupParams(_Params):
    """Near-duplicate detection: MinHash over word shingles + LSH banding, verified on the full signature.

    Similarity is the Jaccard index of the sets of ``shingle_size``-word shingles of the word tokens
    (``\\w+``) of the texts' matching form (:func:`marketplace.ingest.skeleton.match_skeleton`), so case,
    punctuation, whitespace, zero-width characters, accents and look-alike letters never count. A pair is a
    near-duplicate when the MinHash estimate of that Jaccard index (fraction of equal signature slots
    over all ``num_perm`` slots) is at least ``threshold``.

    Why these defaults (measured on real text, pydoc topics and standard-library docstrings, with
    10% of the tokens substituted/deleted/inserted plus case and whitespace changes; see
    ``tests/ingest/test_neardup.py``): with single words as shingles, such copies sit at Jaccard
    0.75-0.95 (1st percentile 0.75 for texts of 8+ words) while random pairs of different texts sit at
    0.05 (99.9th percentile 0.23; long related pydoc sections up to ~0.43), so ``threshold=0.7``
    (also the ``MKT_NEAR_DUPLICATE_THRESHOLD`` default) splits them. Word bigrams with threshold 0.5
    did as well on the same pairs but worse on very short texts (recall 0.94 vs 0.97 at 5+ words).
    LSH: a pair becomes a candidate with probability ``1-(1-J^r)^b``; ``bands=20`` x
    ``rows_per_band=6`` gives 0.98 at J=0.75 and 0.998 at J=0.8, but ~5e-4 at J=0.17 (the median of
    unrelated long texts), so each lookup fetches few candidates even in a large index.
    Measured with these defaults (texts of 12+ words): recall 0.998 on 600 edited copies and 0 false
    positives on 5000 random pairs; end to end through the database, 250 copies submitted by another
    provider were linked to their originals with recall >= 0.95 and no unrelated text linked.
    Trade-off: word sets ignore word order, and texts of fewer than ~8 words rarely reach the
    threshold after one edit (one word of five is already 20%).
    """

    shingle_size: int = Field(default=1, ge=1, le=8)
    num_perm: int = Field(default=128, ge=16, le=1024)
    bands: int = Field(default=20, ge=1)
    rows_per_band: int = Field(default=6, ge=1)
    threshold: float = Field(default=0.7, gt=0.0, le=1.0)
    seed: int = Field(default=1, ge=0, lt=2**32)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.bands * self.rows_per_band > self.num_perm:
            raise ValueError(
                f"bands*rows_per_band = {self.bands * self.rows_per_band} exceeds num_perm = {self.num_perm}"
            )
        return self

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DedupParams:
        """The settings' signature size and threshold; ``bands`` shrinks to fit a small ``num_perm``."""
        num_perm = int(overrides.get("num_perm", settings.minhash_num_perm))
        rows = int(overrides.get("rows_per_band", cls.model_fields["rows_per_band"].default))
        fitted = {"bands": min(int(cls.model_fields["bands"].default), num_perm // rows)}
        return cls._from_settings(settings, {"num_perm": "minhash_num_perm", "threshold": "near_duplicate_threshold"},
                                  {**fitted, **overrides})
