"""Which record fields hold the text: explicit mapping, or auto-detection from the fields present."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from marketplace.ingest.params import FieldMapping
from marketplace.ingest.reasons import ReasonCode
from marketplace.ingest.sources import reject

__all__ = ["AUTO_CANDIDATES", "METADATA_FIELDS", "ResolvedMapping", "resolve_mapping"]

# Tried in this order; the first whose fields are present in at least half of the records wins.
AUTO_CANDIDATES: tuple[tuple[str, ...], ...] = (
    ("text",),
    ("prompt", "response"),
    ("prompt", "completion"),
    ("instruction", "output"),
    ("instruction", "response"),
    ("question", "answer"),
    ("input", "output"),
    ("content",),
)
# Optional per-record metadata kept in Sample.source / Sample.licence ("license" accepted too).
METADATA_FIELDS: dict[str, tuple[str, ...]] = {"source": ("source",), "licence": ("licence", "license")}


@dataclass(frozen=True)
class ResolvedMapping:
    text_field: str | None = None
    prompt_field: str | None = None
    response_field: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        if self.text_field is not None:
            return (self.text_field,)
        assert self.prompt_field is not None and self.response_field is not None  # by construction
        return (self.prompt_field, self.response_field)

    def as_dict(self) -> dict[str, str]:
        if self.text_field is not None:
            return {"text": self.text_field}
        assert self.prompt_field is not None and self.response_field is not None
        return {"prompt": self.prompt_field, "response": self.response_field}

    def wanted_columns(self, available: list[str]) -> list[str]:
        """Mapped fields plus whichever metadata fields exist (for column-oriented readers)."""
        extra = [name for names in METADATA_FIELDS.values() for name in names if name in available]
        return list(dict.fromkeys([*self.fields, *extra]))


def _from_fields(fields: tuple[str, ...]) -> ResolvedMapping:
    if len(fields) == 1:
        return ResolvedMapping(text_field=fields[0])
    return ResolvedMapping(prompt_field=fields[0], response_field=fields[1])


def _found(key_counts: Counter[str]) -> str:
    names = [k for k, _ in key_counts.most_common(20)]
    more = " ..." if len(key_counts) > 20 else ""
    return ", ".join(repr(n) for n in names) + more if names else "none"


def resolve_mapping(requested: FieldMapping, key_counts: Counter[str], n_objects: int, where: str) -> ResolvedMapping:
    """Resolve ``requested`` against the fields seen (``key_counts``: records containing each field).

    Raises ``wrong_field_mapping`` naming the fields found when the mapping matches nothing.
    """
    if not requested.is_auto:
        wanted = (
            (requested.text_field,)
            if requested.text_field is not None
            else (requested.prompt_field, requested.response_field)
        )
        missing = [f for f in wanted if f is not None and key_counts.get(f, 0) == 0]
        if missing:
            raise reject(
                ReasonCode.WRONG_FIELD_MAPPING,
                f"field(s) {', '.join(repr(m) for m in missing)} not found; fields found: {_found(key_counts)}",
                location=where,
            )
        return _from_fields(tuple(f for f in wanted if f is not None))
    best: tuple[float, tuple[str, ...]] | None = None
    for cand in AUTO_CANDIDATES:
        coverage = min(key_counts.get(f, 0) for f in cand) / max(n_objects, 1)
        if coverage >= 0.5:
            return _from_fields(cand)
        if coverage > 0 and (best is None or coverage > best[0]):
            best = (coverage, cand)
    if best is not None:
        return _from_fields(best[1])
    tried = ", ".join("/".join(c) for c in AUTO_CANDIDATES)
    raise reject(
        ReasonCode.WRONG_FIELD_MAPPING,
        f"no text field found (tried {tried}); fields found: {_found(key_counts)}",
        location=where,
    )
