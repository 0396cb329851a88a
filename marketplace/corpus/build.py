"""``build_corpus``: write the provider datasets, the target data and the manifest of a corpus.

Layout of ``OUT``::

    manifest.json                 the contract: see marketplace.corpus.manifest
    <provider>/<file>.{jsonl,csv,parquet}
    target/target.jsonl           the campaign's target data (held-out pydoc topics)
    target/validation.jsonl       held-out topics for evaluation, disjoint from target.jsonl

The build is staged in a sibling folder and moved into place at the end, so ``OUT`` is either
absent, a complete corpus, or untouched. A folder that already holds a corpus with the same build
key (parameters, Python version, available sources) is verified against its SHA-256s and reused;
one with a different key is refused unless ``overwrite`` (a user's other files are never deleted:
a non-empty folder without a manifest is refused even then).
"""

from __future__ import annotations

import hashlib
import logging
import platform
import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from marketplace.corpus.catalog import default_sources
from marketplace.corpus.manifest import (
    MANIFEST_NAME,
    BadRecord,
    CorpusManifest,
    CorpusParams,
    FileInfo,
    ProviderInfo,
    SkippedProvider,
    SourceInfo,
    TargetInfo,
    load_manifest,
)
from marketplace.corpus.pool import RecordFilter, SourcePool
from marketplace.corpus.providers import PROVIDERS, FileSpec, ProviderSpec
from marketplace.corpus.records import SourceRecord
from marketplace.corpus.sources.base import TextSource
from marketplace.corpus.target import TargetGuard, held_out_split, target_guard, target_records
from marketplace.corpus.transforms import near_copy, scramble, shuffle_chars, shuffle_words, to_prompt_response
from marketplace.corpus.writers import Row, sha256_file, write_rows
from marketplace.errors import ConfigError, ManifestMismatchError, MarketplaceError

__all__ = ["build_corpus"]

logger = logging.getLogger(__name__)

TEXT_COLUMNS = ("id", "title", "text", "source", "licence")
PROMPT_RESPONSE_COLUMNS = ("id", "prompt", "response", "source", "licence")
#: Corrupted files mix at most this many of their listed sources (the first available ones).
CORRUPTED_SOURCE_MIX = 3
# Kinds of deliberately bad records, cycled, per (shape, format). Each is something the ingest must
# quarantine: an empty or whitespace-only text, a null, a missing field.
_BAD_KINDS = {
    ("text", "jsonl"): ("empty-text", "missing-field"),
    ("text", "csv"): ("empty-text", "whitespace-only"),
    ("text", "parquet"): ("null-text", "empty-text"),
    ("prompt-response", "jsonl"): ("missing-response", "empty-response"),
    ("prompt-response", "csv"): ("empty-response",),
    ("prompt-response", "parquet"): ("null-response", "empty-response"),
}


def build_corpus(
    out_dir: Path,
    *,
    seed: int = 0,
    small: bool = False,
    overwrite: bool = False,
    sources: Sequence[TextSource] | None = None,
) -> CorpusManifest:
    """Build (or reuse) the provider corpus in ``out_dir`` and return its manifest.

    ``sources`` replaces the default sources (tests use it to point a Debian source at a missing
    folder). Same seed, same machine: byte-identical files and manifest.
    """
    params = CorpusParams(seed=seed, small=small)
    chosen = tuple(sources) if sources is not None else default_sources()
    available = {s.name: s.available() for s in chosen}
    for s in chosen:
        if not available[s.name]:
            logger.warning("source %s is missing (install the Debian package %s); skipped", s.name, s.package)
    build_key = _build_key(params, available)

    out_dir = Path(out_dir)
    reused = _check_existing(out_dir, build_key, overwrite)
    if reused is not None:
        logger.info("reusing the corpus in %s (same parameters and sources, files verified)", out_dir)
        return reused

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        manifest = _Build(params, build_key, chosen, available).run(staging)
        (staging / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("built %d records for %d providers in %s", manifest.total_records, len(manifest.providers), out_dir)
    return manifest


def _build_key(params: CorpusParams, available: dict[str, bool]) -> str:
    parts = [params.digest(), platform.python_version(), *sorted(n for n, ok in available.items() if ok)]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def _check_existing(out_dir: Path, build_key: str, overwrite: bool) -> CorpusManifest | None:
    """The existing corpus when it can be reused; ``None`` when a build may go ahead; else raise."""
    if not out_dir.exists():
        return None
    if not out_dir.is_dir():
        raise ConfigError(f"{out_dir} exists and is not a folder; choose another output folder")
    if not any(out_dir.iterdir()):
        return None
    if not (out_dir / MANIFEST_NAME).is_file():
        raise ConfigError(f"{out_dir} is not empty and holds no corpus {MANIFEST_NAME}; choose an empty or new folder")
    try:
        existing = load_manifest(out_dir)
    except ManifestMismatchError:
        if overwrite:
            return None
        raise
    if existing.build_key == build_key and not overwrite:
        existing.verify(out_dir)
        return existing
    if overwrite:
        return None
    raise ManifestMismatchError(
        f"{out_dir} holds a corpus built with other parameters or sources (seed={existing.seed}, "
        f"small={existing.small}, python {existing.python_version}, missing={existing.missing_sources}); "
        "pass --force (overwrite=True) to rebuild it, or choose another folder"
    )


def _move_into_place(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        out_dir.rename(old / "corpus")
        staging.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out_dir)


class _Build:
    """One build: pools over the sources, files written in PROVIDERS order, manifest collected."""

    def __init__(
        self, params: CorpusParams, build_key: str, sources: Sequence[TextSource], available: dict[str, bool]
    ) -> None:
        self.params = params
        self.build_key = build_key
        self.sources = {s.name: s for s in sources}
        self.available = available
        topics_ok = any(s.name == "python-docs/topics" for s in sources) and available.get("python-docs/topics", False)
        self.guard = target_guard() if topics_ok else TargetGuard([])
        self.filter = RecordFilter(self.guard, near_duplicates=True)
        self.pools: dict[str, SourcePool] = {}
        self.written: dict[str, tuple[FileInfo, list[SourceRecord]]] = {}  # "provider/file" -> (info, good records)

    def pool(self, name: str) -> SourcePool:
        if name not in self.pools:
            self.pools[name] = SourcePool(self.sources[name], self.params.seed, self.filter)
        return self.pools[name]

    def usable(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self.available.get(n, False)]

    def rng(self, *parts: str) -> random.Random:
        return random.Random(":".join(["mkt-corpus", str(self.params.seed), *parts]))

    # -- the build ---------------------------------------------------------------------------------

    def run(self, root: Path) -> CorpusManifest:
        providers: list[ProviderInfo] = []
        skipped: list[SkippedProvider] = []
        for spec in PROVIDERS:
            files, reasons = [], []
            for fspec in spec.files:
                try:
                    files.append(self.write_file(root, spec, fspec))
                except _Skip as exc:
                    logger.warning("%s/%s skipped: %s", spec.name, fspec.filename, exc)
                    reasons.append(f"{fspec.filename}: {exc}")
            if files:
                providers.append(ProviderInfo(name=spec.name, role=spec.role, relevance=spec.relevance,
                                              description=spec.description, files=files))
            else:
                skipped.append(SkippedProvider(name=spec.name, reason="; ".join(reasons)))
            logger.info("provider %s: %d files", spec.name, len(files))
        target = self.write_target(root)
        logger.info("records dropped: %d exact duplicates, %d near-duplicates, %d sharing text with the target",
                    self.filter.rejected_duplicate, self.filter.rejected_near_duplicate, self.filter.rejected_target)
        source_infos = [
            SourceInfo(name=s.name, package=s.package, licence=s.licence, available=self.available[s.name],
                       description=s.describe() if self.available[s.name] else f"missing: {s.package}",
                       records_used=self.pools[s.name].used if s.name in self.pools else 0)
            for s in self.sources.values()
        ]
        return CorpusManifest(
            params=self.params, params_hash=self.params.digest(), build_key=self.build_key,
            seed=self.params.seed, small=self.params.small, python_version=platform.python_version(),
            sources=source_infos, missing_sources=[n for n, ok in self.available.items() if not ok],
            providers=providers, skipped_providers=skipped, target=target,
            total_records=sum(p.records for p in providers),
        )  # fmt: skip

    def write_file(self, root: Path, spec: ProviderSpec, fspec: FileSpec) -> FileInfo:
        rel = f"{spec.name}/{fspec.filename}"
        if fspec.derivation == "exact-copy":
            return self.write_exact_copy(root, rel, fspec)
        rng = self.rng(rel)
        n_good, n_bad = fspec.wanted(self.params.small)
        copy_of: str | None = None
        if fspec.derivation in ("near-copy", "scrambled-copy"):
            copy_of, originals = self.near_copy_originals(fspec)
            picked = rng.sample(originals, min(n_good, len(originals)))
            if fspec.derivation == "near-copy":
                records = [SourceRecord(r.source, r.licence, f"{i:05d}", r.title, near_copy(r.text, rng))
                           for i, r in enumerate(picked)]  # fmt: skip
            else:
                records = [SourceRecord(f"{r.source} (scrambled)", r.licence, f"{i:05d}", "", scramble(r.text, rng))
                           for i, r in enumerate(picked)]  # fmt: skip
            id_prefix = spec.name
        elif fspec.derivation in ("shuffled-words", "shuffled-chars"):
            names = self.usable(fspec.sources)[:CORRUPTED_SOURCE_MIX]
            corrupt = shuffle_words if fspec.derivation == "shuffled-words" else shuffle_chars
            records = [SourceRecord(f"{r.source} ({fspec.derivation})", r.licence, r.key, "", corrupt(r.text, rng))
                       for r in self.draw_mix(names, n_good, rng)]  # fmt: skip
            id_prefix = spec.name
        else:
            records = self.draw_mix(self.usable(fspec.sources), n_good, rng)
            id_prefix = ""
        if not records:
            raise _Skip(f"no records (sources {list(fspec.sources)} missing or exhausted)")

        rows = [self.to_row(r, fspec, rng, id_prefix) for r in records]
        rows, bad = self.insert_bad_records(rows, fspec, n_bad, rng)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = PROMPT_RESPONSE_COLUMNS if fspec.shape == "prompt-response" else TEXT_COLUMNS
        write_rows(path, fspec.format, columns, rows)
        info = FileInfo(
            path=rel, format=fspec.format, shape=fspec.shape, fields=_fields(fspec),
            records=len(rows), good_records=len(records), bad_records=bad,
            sources=sorted({r.source for r in records}), licences=sorted({r.licence for r in records}),
            derivation=fspec.derivation, copy_of=copy_of, sha256=sha256_file(path), n_bytes=path.stat().st_size,
        )  # fmt: skip
        self.written[rel] = (info, records)
        return info

    def draw_mix(self, names: Sequence[str], n: int, rng: random.Random) -> list[SourceRecord]:
        """``n`` records split evenly over the sources ``names`` (earlier ones get the remainder), shuffled."""
        if not names:
            return []
        quotas = [n // len(names) + (1 if i < n % len(names) else 0) for i in range(len(names))]
        records = [r for name, quota in zip(names, quotas, strict=True) for r in self.pool(name).take(quota)]
        if len(names) > 1:
            rng.shuffle(records)
        return records

    def near_copy_originals(self, fspec: FileSpec) -> tuple[str, list[SourceRecord]]:
        for provider in fspec.copy_of:
            originals = [r for rel, (_, recs) in self.written.items() if rel.startswith(provider + "/") for r in recs]
            if originals:
                return provider, originals
        raise _Skip(f"none of the providers to copy from was built: {list(fspec.copy_of)}")

    def write_exact_copy(self, root: Path, rel: str, fspec: FileSpec) -> FileInfo:
        original = fspec.copy_of[0]
        if original not in self.written:
            raise _Skip(f"{original} was not built, so there is nothing to copy")
        info, records = self.written[original]
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / original, path)
        copied = info.model_copy(update={"path": rel, "derivation": "exact-copy", "copy_of": original})
        self.written[rel] = (copied, records)
        return copied

    @staticmethod
    def to_row(record: SourceRecord, fspec: FileSpec, rng: random.Random, id_prefix: str) -> Row:
        rid = f"{id_prefix}:{record.key}" if id_prefix else f"{record.source}:{record.key}"
        if fspec.shape == "prompt-response":
            prompt, response = to_prompt_response(record, rng)
            return {"id": rid, "prompt": prompt, "response": response, "source": record.source,
                    "licence": record.licence}  # fmt: skip
        return {"id": rid, "title": record.title, "text": record.text, "source": record.source,
                "licence": record.licence}  # fmt: skip

    @staticmethod
    def insert_bad_records(
        rows: list[Row], fspec: FileSpec, n_bad: int, rng: random.Random
    ) -> tuple[list[Row], list[BadRecord]]:
        """Insert ``n_bad`` broken rows at seeded positions; their kinds cycle through _BAD_KINDS."""
        if n_bad <= 0:
            return rows, []
        kinds = _BAD_KINDS[(fspec.shape, fspec.format)]
        total = len(rows) + n_bad
        positions = sorted(rng.sample(range(total), n_bad))
        out: list[Row] = []
        bad: list[BadRecord] = []
        good = iter(rows)
        for index in range(total):
            if len(bad) < n_bad and positions[len(bad)] == index:
                kind = kinds[len(bad) % len(kinds)]
                template = rows[min(index, len(rows) - 1)]
                out.append(_broken_row(template, kind, index))
                bad.append(BadRecord(index=index, kind=kind))
            else:
                out.append(next(good))
        return out, bad

    def write_target(self, root: Path) -> TargetInfo:
        split = held_out_split()
        if not self.available.get("python-docs/topics", False) or not (split.target and split.validation):
            raise MarketplaceError(
                "this Python has no pydoc_data.topics, so there is no target data for the demo campaign; "
                "use a standard CPython build (the pydoc_data package ships with it)"
            )
        infos = []
        for which in ("target", "validation"):
            records = target_records(which)
            rel = f"target/{which}.jsonl"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            fspec = FileSpec(f"{which}.jsonl", len(records), len(records))
            rows = [self.to_row(r, fspec, self.rng(rel), "") for r in records]
            write_rows(path, "jsonl", TEXT_COLUMNS, rows)
            infos.append(FileInfo(
                path=rel, format="jsonl", shape="text", fields={"text": "text"}, records=len(rows),
                good_records=len(rows), bad_records=[], sources=sorted({r.source for r in records}),
                licences=sorted({r.licence for r in records}), derivation="original",
                sha256=sha256_file(path), n_bytes=path.stat().st_size,
            ))  # fmt: skip
        return TargetInfo(target=infos[0], validation=infos[1], target_topics=sorted(split.target),
                          validation_topics=sorted(split.validation))  # fmt: skip


class _Skip(Exception):
    """A file cannot be built on this machine (its sources are missing); the reason goes to the manifest."""


def _fields(fspec: FileSpec) -> dict[str, str]:
    if fspec.shape == "prompt-response":
        return {"prompt": "prompt", "response": "response"}
    return {"text": "text"}


def _broken_row(template: Row, kind: str, index: int) -> Row:
    """A row like ``template`` (same id stem, source, licence) whose text field is broken as ``kind`` says."""
    row: Row = {k: v for k, v in template.items() if k in ("id", "title", "source", "licence")}
    row["id"] = f"{template['id']}:broken-{index}"
    if kind == "missing-field":
        return row
    if "prompt" in template:
        row["prompt"] = template["prompt"]
        if kind != "missing-response":
            row["response"] = {"empty-response": "", "null-response": None}[kind]
        return row
    row["text"] = {"empty-text": "", "whitespace-only": "   \n\t  ", "null-text": None}[kind]
    return row
