"""The build's parameters and its manifest: what was built, from what, under which licences.

``manifest.json`` at the root of a built corpus is the contract for its users (the demo, the
ingest flow, tests): every provider and file with its format, field mapping, record counts, the
deliberately bad records, sources, licences and SHA-256; the target files; the sources that were
missing on the building machine. It carries no timestamp, so the same seed on the same machine
gives a byte-identical manifest too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from marketplace.corpus.providers import Derivation, FileFormat, Relevance, Role, Shape
from marketplace.errors import ManifestMismatchError

__all__ = [
    "CORPUS_FORMAT_VERSION",
    "MANIFEST_NAME",
    "BadRecord",
    "CorpusManifest",
    "CorpusParams",
    "FileInfo",
    "ProviderInfo",
    "SkippedProvider",
    "SourceInfo",
    "TargetInfo",
    "load_manifest",
]

#: Bump when the layout or the content rules change: a folder built by another version is not reused.
CORPUS_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CorpusParams(_Frozen):
    """What a build depends on besides the machine's sources. Hashed into ``params_hash``."""

    seed: int = Field(default=0, ge=0, description="Seed of every random choice (sampling, edits, corruption).")
    small: bool = Field(default=False, description="A few hundred records per provider instead of thousands.")
    format_version: int = CORPUS_FORMAT_VERSION

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode("utf-8")).hexdigest()


class SourceInfo(_Frozen):
    name: str
    package: str | None
    licence: str
    available: bool
    description: str
    records_used: int = 0


class BadRecord(_Frozen):
    """A deliberately broken record: 0-based position in the file (JSONL line / CSV or Parquet row)."""

    index: int
    kind: str


class FileInfo(_Frozen):
    path: str = Field(description="Relative to the corpus root, POSIX separators.")
    format: FileFormat
    shape: Shape
    fields: dict[str, str] = Field(
        description="Ingest field mapping: {'text': col} or {'prompt': col, 'response': col}."
    )
    records: int = Field(description="Rows in the file, bad ones included.")
    good_records: int
    bad_records: list[BadRecord]
    sources: list[str]
    licences: list[str]
    derivation: Derivation
    copy_of: str | None = Field(default=None, description="Exact copy: the file copied; near copy: the provider.")
    sha256: str
    n_bytes: int


class ProviderInfo(_Frozen):
    name: str
    role: Role
    relevance: Relevance
    description: str
    files: list[FileInfo]

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)

    @property
    def good_records(self) -> int:
        return sum(f.good_records for f in self.files)


class SkippedProvider(_Frozen):
    name: str
    reason: str


class TargetInfo(_Frozen):
    """The campaign's target data (``target``) and a validation set, from held-out pydoc topics."""

    target: FileInfo
    validation: FileInfo
    target_topics: list[str]
    validation_topics: list[str]


class CorpusManifest(_Frozen):
    format_version: int = CORPUS_FORMAT_VERSION
    params: CorpusParams
    params_hash: str
    build_key: str = Field(description="params_hash + Python version + available sources; equal key = reusable.")
    seed: int
    small: bool
    python_version: str
    sources: list[SourceInfo]
    missing_sources: list[str]
    providers: list[ProviderInfo]
    skipped_providers: list[SkippedProvider]
    target: TargetInfo
    total_records: int

    def provider(self, name: str) -> ProviderInfo:
        for info in self.providers:
            if info.name == name:
                return info
        raise KeyError(f"provider {name!r} is not in this corpus; built: {[p.name for p in self.providers]}")

    def all_files(self) -> list[FileInfo]:
        return [f for p in self.providers for f in p.files] + [self.target.target, self.target.validation]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    def content_digest(self) -> str:
        """SHA-256 (hex) over every file's path and SHA-256, in path order: two corpora with the same digest
        hold the same bytes, whatever machine built them. The demo prints it with the missing sources, so a
        corpus that changed with what the machine has installed is visible."""
        lines = sorted(f"{f.path}\t{f.sha256}" for f in self.all_files())
        return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()

    def missing_packages(self) -> list[str]:
        """The Debian packages whose sources were missing when the corpus was built (install them to get the
        full corpus), in source order."""
        return list(dict.fromkeys(s.package for s in self.sources if not s.available and s.package))

    def verify(self, root: Path) -> None:
        """Raise :class:`ManifestMismatchError` unless every listed file exists with its recorded SHA-256."""
        from marketplace.corpus.writers import sha256_file

        for info in self.all_files():
            path = root / info.path
            if not path.is_file():
                raise ManifestMismatchError(
                    f"{path} is listed in {root / MANIFEST_NAME} but missing; rebuild the corpus with --force"
                )
            if sha256_file(path) != info.sha256:
                raise ManifestMismatchError(
                    f"{path} does not match its SHA-256 in {root / MANIFEST_NAME} (edited after the build?); "
                    "rebuild the corpus with --force"
                )


def load_manifest(root: Path) -> CorpusManifest:
    """Read ``ROOT/manifest.json``; :class:`ManifestMismatchError` when absent or unreadable."""
    path = root / MANIFEST_NAME
    try:
        return CorpusManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise ManifestMismatchError(f"{root} has no {MANIFEST_NAME}: it is not a built corpus") from exc
    except ValueError as exc:  # JSON or pydantic validation error
        raise ManifestMismatchError(f"{path} is not a corpus manifest of this version ({exc}); rebuild it") from exc
