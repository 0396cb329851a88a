"""``build_corpus`` and ``marketplace corpus build``: complete manifest, readable files in every format,
deterministic bytes, the copycat's copies, no target text in any provider file, missing sources.

Files are read back with pandas/pyarrow (not with marketplace.ingest: that is tested on its own).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import sparse
from typer.testing import CliRunner

from marketplace.cli.app import app
from marketplace.corpus import PROVIDERS, CorpusManifest, build_corpus, default_sources, load_manifest
from marketplace.corpus.manifest import MANIFEST_NAME, FileInfo
from marketplace.corpus.sources import DictdSource, FortunesSource, LicencesSource, WordNetSource
from marketplace.corpus.target import word_ngrams
from marketplace.corpus.writers import sha256_file
from marketplace.errors import ConfigError, ManifestMismatchError

SEED = 7
QUARANTINE_THRESHOLD = 0.2  # the ingest default (Settings.max_quarantine_fraction)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CorpusManifest]:
    out = tmp_path_factory.mktemp("corpus") / "out"
    return out, build_corpus(out, seed=SEED, small=True)


def read_rows(path: Path, fmt: str) -> list[dict[str, object]]:
    """Every row of a provider file as a dict; a JSONL field that is absent stays absent."""
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if fmt == "csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
    return pq.read_table(path).to_pylist()


def row_texts(row: dict[str, object]) -> list[str]:
    """The non-blank text fields of a row (none for a deliberately broken row)."""
    return [str(row[k]) for k in ("text", "prompt", "response") if isinstance(row.get(k), str) and str(row[k]).strip()]


def is_broken(row: dict[str, object], info: FileInfo) -> bool:
    field = info.fields.get("text") or info.fields["response"]
    value = row.get(field)
    return not isinstance(value, str) or not value.strip()


def test_manifest_is_complete(corpus: tuple[Path, CorpusManifest]) -> None:
    out, manifest = corpus
    assert load_manifest(out) == manifest
    assert (out / MANIFEST_NAME).read_text(encoding="utf-8") == manifest.to_json()
    assert manifest.seed == SEED and manifest.small
    assert manifest.params_hash == manifest.params.digest()
    assert {s.name for s in manifest.sources} == {s.name for s in default_sources()}
    assert manifest.missing_sources == [s.name for s in manifest.sources if not s.available]
    built = {p.name for p in manifest.providers} | {p.name for p in manifest.skipped_providers}
    assert built == {p.name for p in PROVIDERS}
    assert [p.name for p in manifest.providers] == [p.name for p in PROVIDERS if p.name in built - {
        s.name for s in manifest.skipped_providers}]  # ingest order kept
    assert all(s.reason for s in manifest.skipped_providers)
    formats = {f.format for p in manifest.providers for f in p.files}
    assert formats == {"jsonl", "csv", "parquet"}
    assert any(f.shape == "prompt-response" and f.fields == {"prompt": "prompt", "response": "response"}
               for p in manifest.providers for f in p.files) or "wordnet" in manifest.missing_sources
    for info in manifest.all_files():
        path = out / info.path
        assert path.is_file(), info.path
        assert sha256_file(path) == info.sha256 and path.stat().st_size == info.n_bytes
        assert info.sources and info.licences and all(info.licences)
        assert info.records == info.good_records + len(info.bad_records)
    assert manifest.total_records == sum(f.records for p in manifest.providers for f in p.files)
    for provider in manifest.providers:
        spec = next(s for s in PROVIDERS if s.name == provider.name)
        assert provider.role == spec.role and provider.relevance == spec.relevance
    assert manifest.target.target.records >= 50 and manifest.target.validation.records >= 20
    assert not set(manifest.target.target_topics) & set(manifest.target.validation_topics)
    used = {s.name: s.records_used for s in manifest.sources}
    assert used["python-stdlib-docstrings"] > 0 and used["python-docs/topics"] > 0


def test_files_read_back_in_every_format(corpus: tuple[Path, CorpusManifest]) -> None:
    out, manifest = corpus
    for provider in manifest.providers:
        for info in provider.files:
            rows = read_rows(out / info.path, info.format)
            assert len(rows) == info.records, info.path
            broken = {i for i, row in enumerate(rows) if is_broken(row, info)}
            assert broken == {b.index for b in info.bad_records}, info.path
            assert len(broken) / len(rows) < QUARANTINE_THRESHOLD / 4, "bad records must stay well below quarantine"
            for i, row in enumerate(rows):
                assert row["source"] and row["licence"] and row["id"], (info.path, i)
                if i not in broken:
                    texts = row_texts(row)
                    assert texts and all(t.strip() for t in texts)
                    assert row["source"] in info.sources and row["licence"] in info.licences
                    if info.derivation == "original":
                        assert 80 <= len(texts[-1]) <= 2000
            ids = [row["id"] for row in rows]
            assert len(set(ids)) == len(ids), f"{info.path}: ids must be unique"
    # Small build: a few hundred records per provider at most.
    assert all(50 <= p.good_records <= 400 for p in manifest.providers), [(p.name, p.good_records)
                                                                       for p in manifest.providers]
    bad_kinds = {b.kind for p in manifest.providers for f in p.files for b in f.bad_records}
    assert {"empty-text", "missing-field"} <= bad_kinds


def test_copycat_resubmits_exact_and_near_copies(corpus: tuple[Path, CorpusManifest]) -> None:
    out, manifest = corpus
    copycat = manifest.provider("copycat")
    exact = next(f for f in copycat.files if f.derivation == "exact-copy")
    assert exact.copy_of == "pydocs-press/topics.jsonl"
    assert (out / exact.path).read_bytes() == (out / exact.copy_of).read_bytes()

    near = next(f for f in copycat.files if f.derivation == "near-copy")
    original_provider = manifest.provider(near.copy_of or "")
    originals = [" ".join(t.casefold().split()) for f in original_provider.files
                 for row in read_rows(out / f.path, f.format) for t in row_texts(row)]
    originals_5grams = [(o, {o[i : i + 5] for i in range(len(o) - 4)}) for o in originals]
    for row in read_rows(out / near.path, near.format)[:40]:
        copy = " ".join(str(row["text"]).casefold().split())
        assert copy not in originals  # not an exact copy...
        grams = {copy[i : i + 5] for i in range(len(copy) - 4)}
        best = max(len(grams & g) / len(grams | g) for _, g in originals_5grams)
        assert best >= 0.7, "...but a near copy of an original record"


def test_only_the_copycat_duplicates(corpus: tuple[Path, CorpusManifest]) -> None:
    """No exact or near (word-set Jaccard >= 0.7) duplicates except the copycat's near copies, each of which
    has its original. Exact Jaccard of every pair, from a sparse word-incidence matrix (independent of the
    build's MinHash filter)."""
    out, manifest = corpus
    texts, owners = [], []
    for provider in manifest.providers:
        for info in provider.files:
            if info.derivation != "exact-copy":
                for row in read_rows(out / info.path, info.format):
                    if row_texts(row):
                        texts.append(" ".join(row_texts(row)))
                        owners.append(provider.name)
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, text in enumerate(texts):
        for word in set(re.findall(r"\w+", text.casefold())):
            rows.append(i)
            cols.append(vocab.setdefault(word, len(vocab)))
    incidence = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(vocab)))
    inter = (incidence @ incidence.T).toarray()  # (N, N) shared words
    sizes = np.diag(inter)
    jaccard = inter / (sizes[:, None] + sizes[None, :] - inter)
    np.fill_diagonal(jaccard, 0.0)
    is_copycat = np.array([o == "copycat" for o in owners])
    # garbled-docs scrambles pydocs-press's records: it shares their words by design (never their order)
    is_derived = is_copycat | np.array([o == "garbled-docs" for o in owners])
    near = jaccard >= 0.7
    assert not near[~is_derived][:, ~is_derived].any(), "duplicates between or within honest providers"
    assert near[is_copycat][:, ~is_derived].any(axis=1).all(), "every near copy has its original"


def test_noisy_bytes_is_corrupted_real_text(corpus: tuple[Path, CorpusManifest]) -> None:
    out, manifest = corpus
    noisy = manifest.provider("noisy-bytes")
    assert {f.derivation for f in noisy.files} == {"shuffled-words", "shuffled-chars"}
    for info in noisy.files:
        texts = [t for row in read_rows(out / info.path, info.format) for t in row_texts(row)]
        assert texts and all(len(t) >= 50 for t in texts)  # (whitespace runs collapse to one space)
        if info.derivation == "shuffled-chars":
            # Characters of real text: mostly letters and spaces, very few real words left.
            assert sum(c.isalpha() or c == " " for t in texts for c in t) / sum(map(len, texts)) > 0.8
            words = [w for t in texts for w in t.split()]
            assert sum(w in {"the", "of", "and", "a", "to", "in"} for w in words) / len(words) < 0.03
        else:
            words = [w.lower() for t in texts for w in t.split()]
            assert sum(w in {"the", "of", "and", "a", "to", "in"} for w in words) / len(words) > 0.05


def test_garbled_docs_scrambles_pydocs_press_beyond_near_duplicate_reach(corpus: tuple[Path, CorpusManifest]) -> None:
    """Each garbled record is a pydocs-press record with the same words, mostly scrambled letters and a
    new word order: few of its word 5-grams survive, so shingle-based near-duplicate detection misses it."""
    out, manifest = corpus
    (garbled,) = manifest.provider("garbled-docs").files
    assert garbled.derivation == "scrambled-copy" and garbled.copy_of == "pydocs-press"
    originals = {}
    for info in manifest.provider("pydocs-press").files:
        for row in read_rows(out / info.path, info.format):
            for t in row_texts(row):
                originals[tuple(sorted(w[0] + w[-1] for w in t.split()))] = t
    texts = [t for row in read_rows(out / garbled.path, garbled.format) for t in row_texts(row)]
    assert len(texts) == garbled.good_records > 0

    def grams(t: str) -> set[tuple[str, ...]]:
        words = t.split()
        return {tuple(words[i : i + 5]) for i in range(max(1, len(words) - 4))}

    surviving = []
    for text in texts:
        original = originals[tuple(sorted(w[0] + w[-1] for w in text.split()))]  # first/last letters kept
        assert text != original
        surviving.append(len(grams(text) & grams(original)) / len(grams(original)))
    assert float(np.median(surviving)) < 0.1


def test_licence_prose_is_fluent_off_target_text(corpus: tuple[Path, CorpusManifest]) -> None:
    out, manifest = corpus
    (info,) = manifest.provider("licence-prose").files
    texts = [t for row in read_rows(out / info.path, info.format) for t in row_texts(row)]
    assert len(texts) >= 200 and all(80 <= len(t) <= 2000 for t in texts)
    words = [w.lower() for t in texts for w in t.split()]
    assert sum(w in {"the", "of", "and", "a", "to", "in"} for w in words) / len(words) > 0.1  # fluent English
    assert sum("licen" in t.lower() or "copyright" in t.lower() for t in texts) / len(texts) > 0.2


def test_no_target_text_in_any_provider_file(corpus: tuple[Path, CorpusManifest]) -> None:
    out, manifest = corpus
    held_out = []
    for info in (manifest.target.target, manifest.target.validation):
        held_out += [str(row["text"]) for row in read_rows(out / info.path, "jsonl")]
    target_ids = {json.loads(line)["id"] for line in (out / manifest.target.target.path).read_text().splitlines()}
    paragraphs = [" ".join(p.split()) for t in held_out for p in t.split("\n\n") if len(p) >= 60]
    grams = set().union(*(word_ngrams(p) for p in paragraphs))
    for provider in manifest.providers:
        for info in provider.files:
            rows = read_rows(out / info.path, info.format)
            assert not target_ids & {row["id"] for row in rows}
            blob = "\n".join(" ".join(t.split()) for row in rows for t in row_texts(row))
            assert not [p for p in paragraphs if p in blob], info.path
            assert all(grams.isdisjoint(word_ngrams(t)) for row in rows for t in row_texts(row)), info.path


def test_build_is_deterministic_across_processes(corpus: tuple[Path, CorpusManifest], tmp_path: Path) -> None:
    out, manifest = corpus
    env = {**os.environ, "PYTHONHASHSEED": "12345", "MKT_HOME": str(tmp_path / "home")}
    again = tmp_path / "again"
    command = "from marketplace.cli.app import main; main()"
    done = subprocess.run([sys.executable, "-c", command, "corpus", "build", str(again), "--seed", str(SEED), "--small",
                           "--json"], check=True, env=env, capture_output=True, text=True, timeout=300)
    assert json.loads(done.stdout)["build_key"] == manifest.build_key  # a fresh process: stdout is only JSON
    assert (again / MANIFEST_NAME).read_bytes() == (out / MANIFEST_NAME).read_bytes()
    for info in manifest.all_files():
        assert (again / info.path).read_bytes() == (out / info.path).read_bytes(), info.path

    other = build_corpus(tmp_path / "other-seed", seed=SEED + 1, small=True)
    before = {f.path: f.sha256 for f in manifest.all_files()}
    after = {f.path: f.sha256 for f in other.all_files()}
    assert before["foldoc-computing/foldoc-a.csv"] != after["foldoc-computing/foldoc-a.csv"] or \
        "foldoc" in manifest.missing_sources
    assert before["pydocs-press/docstrings.parquet"] != after["pydocs-press/docstrings.parquet"]
    assert before["target/target.jsonl"] == after["target/target.jsonl"]  # the target never depends on the seed


def test_reuse_refuse_and_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "c"
    python_only = _python_only_sources(tmp_path)
    first = build_corpus(out, seed=1, small=True, sources=python_only)
    stamp = (out / MANIFEST_NAME).stat().st_mtime_ns
    assert build_corpus(out, seed=1, small=True, sources=python_only) == first
    assert (out / MANIFEST_NAME).stat().st_mtime_ns == stamp  # reused, not rebuilt

    with pytest.raises(ManifestMismatchError, match="other parameters"):
        build_corpus(out, seed=2, small=True, sources=python_only)
    second = build_corpus(out, seed=2, small=True, sources=python_only, overwrite=True)
    assert second.seed == 2 and load_manifest(out).seed == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.")]  # staging folders cleaned up

    victim = out / second.providers[0].files[0].path
    victim.write_bytes(victim.read_bytes() + b"\n")
    with pytest.raises(ManifestMismatchError, match="SHA-256"):
        build_corpus(out, seed=2, small=True, sources=python_only)

    stranger = tmp_path / "not-a-corpus"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        build_corpus(stranger, small=True, sources=python_only, overwrite=True)
    assert (stranger / "notes.txt").read_text() == "mine"


def _python_only_sources(tmp_path: Path) -> list:
    """Default sources with every Debian one pointed at a folder that does not exist."""
    absent = tmp_path / "absent"
    out = []
    for s in default_sources():
        if isinstance(s, DictdSource | WordNetSource | FortunesSource | LicencesSource):
            s = dataclasses.replace(s, directory=absent)
        out.append(s)
    return out


def test_build_without_debian_packages_skips_and_records_them(tmp_path: Path) -> None:
    manifest = build_corpus(tmp_path / "py", small=True, sources=_python_only_sources(tmp_path))
    assert set(manifest.missing_sources) == {"foldoc", "jargon", "gcide", "wordnet", "fortunes", "licences"}
    assert {s.name for s in manifest.skipped_providers} == {
        "foldoc-computing", "jargon-lore", "wordnet-glosses", "gcide-general", "fortune-teller", "licence-prose"}
    assert all("missing" in s.reason for s in manifest.skipped_providers)
    assert [p.name for p in manifest.providers] == ["pydocs-press", "copycat", "noisy-bytes", "garbled-docs"]
    # The copycat falls back to copying pydocs-press; the noisy provider to Python docstrings.
    assert manifest.provider("copycat").files[1].copy_of == "pydocs-press"
    for f in manifest.provider("noisy-bytes").files:
        assert f.sources == [f"python-stdlib-docstrings ({f.derivation})"]
    manifest.verify(tmp_path / "py")


@pytest.mark.parametrize("path", [["corpus"], ["corpus", "build"], ["corpus", "sources"]])
def test_cli_corpus_help(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output, result.output


def test_cli_corpus_build_and_sources_json(mkt_home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli-corpus"
    result = runner.invoke(app, ["corpus", "build", str(out), "--small", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["out_dir"] == str(out.resolve()) and data["seed"] == 3 and data["small"] is True
    assert [p["name"] for p in data["providers"]] == [p.name for p in load_manifest(out).providers]

    again = runner.invoke(app, ["corpus", "build", str(out), "--small", "--seed", "4", "--json"])
    assert again.exit_code == ManifestMismatchError.exit_code
    assert "--force" in again.output

    listed = runner.invoke(app, ["corpus", "sources", "--json"])
    assert listed.exit_code == 0, listed.output
    sources = json.loads(listed.stdout)
    assert {s["name"] for s in sources} == {s.name for s in default_sources()}
    assert all(s["licence"] for s in sources)


def test_content_digest_names_the_bytes_and_missing_packages_the_fix(tmp_path: Path) -> None:
    manifest = build_corpus(tmp_path / "py", small=True, sources=_python_only_sources(tmp_path))
    again = build_corpus(tmp_path / "py2", small=True, sources=_python_only_sources(tmp_path))
    assert manifest.content_digest() == again.content_digest() and len(manifest.content_digest()) == 64
    edited = manifest.model_copy(update={"total_records": 0})  # not a file: the digest covers bytes only
    assert edited.content_digest() == manifest.content_digest()
    other = manifest.providers[0].files[0].model_copy(update={"sha256": "0" * 64})
    changed = manifest.model_copy(update={"providers": [manifest.providers[0].model_copy(
        update={"files": [other, *manifest.providers[0].files[1:]]}), *manifest.providers[1:]]})
    assert changed.content_digest() != manifest.content_digest()
    assert set(manifest.missing_packages()) >= {"dict-foldoc", "dict-jargon", "dict-gcide", "base-files"}
