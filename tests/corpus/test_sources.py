"""Each text source parses into clean records with source and licence; text helpers and transforms.

Debian sources may be absent on another machine: a source's test then checks, through its own
``available()``, that a build skips it and records it as missing (never a silent pass). The parser
tests on small synthetic dictd / WordNet / fortune files run everywhere.
"""

from __future__ import annotations

import gzip
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.corpus import (
    build_corpus,
    default_sources,
    general_text,
    held_out_split,
    model_text_sources,
    target_records,
)
from marketplace.corpus.manifest import CorpusManifest
from marketplace.corpus.neardup import NearDuplicateFilter, word_set_jaccard
from marketplace.corpus.records import MAX_RECORD_CHARS, MIN_RECORD_CHARS, chunk_paragraphs
from marketplace.corpus.sources import DictdSource, FortunesSource, LicencesSource, TextSource, WordNetSource
from marketplace.corpus.sources.dictd import decode_dictd_number, read_dictd_index
from marketplace.corpus.sources.fortunes import split_fortunes
from marketplace.corpus.sources.licences import WINDOW_CHARS, sentence_windows
from marketplace.corpus.sources.wordnet import parse_wordnet_line
from marketplace.corpus.target import word_ngrams
from marketplace.corpus.transforms import near_copy, scramble, shuffle_chars, shuffle_words

SOURCES = {s.name: s for s in default_sources()}
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# What must not survive cleaning, per source (markup of the original format).
LEFTOVER_MARKUP = {
    "foldoc": re.compile(r"[{}]|^\(\d{4}-\d{2}-\d{2}\)$|\n<[^>]+>", re.MULTILINE),
    "jargon": re.compile(r"[{}]"),
    "gcide": re.compile(r"\[1913 Webster\]|\[WordNet|\[PJC\]|\\"),
    "python-docs/topics": re.compile(r"^\*{5,}$|^={5,}$", re.MULTILINE),
}


def _sample_units(source: TextSource, n_units: int = 400) -> list:
    units = list(source.units())
    step = max(1, len(units) // n_units)
    return units[::step]


@pytest.fixture(scope="module")
def missing_build(tmp_path_factory: pytest.TempPathFactory) -> CorpusManifest | None:
    """A small build, made only when some source is missing here, to check how it is recorded."""
    if all(s.available() for s in SOURCES.values()):
        return None
    return build_corpus(tmp_path_factory.mktemp("missing") / "corpus", small=True)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_source_parses_into_clean_records(name: str, missing_build: CorpusManifest | None) -> None:
    source = SOURCES[name]
    if not source.available():
        assert missing_build is not None
        assert name in missing_build.missing_sources
        assert all(name not in f.sources for f in missing_build.all_files())
        return
    records = [r for unit in _sample_units(source) for r in source.records_of(unit)]
    assert len(records) >= 100, f"{name}: only {len(records)} records from a sample of its entries"
    assert len({r.key for r in records}) == len(records), "keys must be unique within a source"
    for r in records:
        assert r.source == name and r.licence == source.licence and r.licence
        assert r.title.strip()
        assert MIN_RECORD_CHARS <= len(r.text) <= MAX_RECORD_CHARS, (r.key, len(r.text))
        assert not CONTROL.search(r.text), r.key
        assert "\ufffd" not in r.text
        assert r.text == r.text.rstrip() and r.text[:1] != "\n"  # (a first line may be indented: layout)
        if name in LEFTOVER_MARKUP:  # (headwords may contain the characters: "{log}" is a language)
            assert not LEFTOVER_MARKUP[name].search(r.text.replace(r.title, "")), (r.key, r.text[:300])
    # Records read as text: mostly letters and spaces, not markup or binary.
    letters = sum(c.isalpha() or c.isspace() for r in records for c in r.text)
    assert letters / sum(len(r.text) for r in records) > 0.75


def test_python_sources_always_exist() -> None:
    assert SOURCES["python-docs/topics"].available()
    assert SOURCES["python-stdlib-docstrings"].available()
    docstrings = SOURCES["python-stdlib-docstrings"].load()
    assert len(docstrings) > 1000
    titles = {r.title for r in docstrings}
    assert "json.dumps" in titles and "textwrap.dedent" in titles
    dumps = next(r for r in docstrings if r.title == "json.dumps")
    assert dumps.text.startswith("json.dumps(obj, *,") and "Serialize ``obj``" in dumps.text


def test_dictd_number_decoding() -> None:
    assert decode_dictd_number("A") == 0
    assert decode_dictd_number("B") == 1
    assert decode_dictd_number("BA") == 64
    assert decode_dictd_number("//") == 63 * 64 + 63
    assert decode_dictd_number("Gb9L") == ((6 * 64 + 27) * 64 + 61) * 64 + 11
    with pytest.raises(ValueError, match="not a dictd base64 digit"):
        decode_dictd_number("A=")


@pytest.mark.parametrize("name", ["foldoc", "jargon"])
def test_real_dictd_index_points_at_its_headwords(name: str) -> None:
    source = SOURCES[name]
    if not source.available():
        pytest.skip(f"{name} missing here; its absence is checked by test_source_parses_into_clean_records")
    assert isinstance(source, DictdSource)
    with gzip.open(source.directory / f"{name}.dict.dz", "rb") as fh:
        data = fh.read()
    entries = read_dictd_index(source.directory / f"{name}.index")
    for entry in entries[:: max(1, len(entries) // 200)]:
        raw = data[entry.offset : entry.offset + entry.length].decode("utf-8", errors="replace")
        # Decoded offsets land on an entry: its first line is a headword line (not indented).
        assert raw[:1].strip(), (entry, raw[:80])


def _write_dictd(directory: Path, name: str, entries: list[tuple[str, str]]) -> None:
    """A tiny dictd dictionary: ``entries`` are (headword, raw entry text)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    def b64(n: int) -> str:
        out = ""
        while True:
            out = alphabet[n % 64] + out
            n //= 64
            if n == 0:
                return out

    data = b""
    index = []
    for headword, raw in [("00-database-short", "00-database-short\n     A test dictionary\n"), *entries]:
        blob = raw.encode("utf-8")
        index.append(f"{headword}\t{b64(len(data))}\t{b64(len(blob))}\n")
        data += blob
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.index").write_text("".join(index), encoding="utf-8")
    with gzip.open(directory / f"{name}.dict.dz", "wb") as fh:
        fh.write(data)


def test_foldoc_cleaning_on_synthetic_dictionary(tmp_path: Path) -> None:
    body = (
        "   <programming> A {data-parallel} extension of {Common LISP} developed to program the\n"
        "   {Connection Machine}, with parallel variables.\n\n   (2014-12-17)\n\n"
    )
    jargon_copy = (
        "big iron\n\n   Large, expensive, ultra-fast computers, as used by many people.\n\n   [{Jargon File}]\n\n"
    )
    _write_dictd(tmp_path, "foldoc", [("*LISP", "*LISP\nStarLISP\n\n" + body), ("big iron", jargon_copy)])
    source = DictdSource(name="foldoc", licence="GFDL-1.1-or-later", package="dict-foldoc", directory=tmp_path)
    assert source.available()
    assert source.describe() == "A test dictionary"
    records = source.load()
    assert [r.title for r in records] == ["*LISP"]  # the Jargon-derived entry is skipped
    assert records[0].text == (
        "*LISP, StarLISP\n\nA data-parallel extension of Common LISP developed to program the "
        "Connection Machine, with parallel variables."
    )


def test_foldoc_defers_to_the_jargon_file_for_untagged_copies(tmp_path: Path) -> None:
    copied = "   The users on one's local network (as opposed, say, to people one reaches via public Internet).\n"
    jargon_entry = "locals, the\n pl.n.\n\n" + copied.replace("Internet", "Internet or UUCP connections")
    own = "   In programming, variables declared inside a function body and visible only within that function.\n"
    _write_dictd(tmp_path, "jargon", [("locals, the", jargon_entry)])
    _write_dictd(tmp_path, "foldoc", [("locals, the", "locals, the\n\n" + copied),
                                      ("locals", "locals\n\n" + own + "   Also called local variables.\n")])
    foldoc = DictdSource(name="foldoc", licence="GFDL-1.1-or-later", package="dict-foldoc", directory=tmp_path,
                         defer_to="jargon")
    assert [r.text.split("\n")[0] for r in foldoc.load()] == ["locals"]  # the copy is left to the Jargon File
    undeferred = DictdSource(name="foldoc", licence="GFDL-1.1-or-later", package="dict-foldoc", directory=tmp_path)
    assert len(undeferred.load()) == 2


def test_gcide_cleaning_on_synthetic_dictionary(tmp_path: Path) -> None:
    raw = (
        "Lapidescent \\Lap`i*des\"cent\\, a. [L. lapidescens, fr. lapis stone: cf. F.\n"
        "   lapidescent, lat['e]ral.]\n   Undergoing the process of becoming stone; having the capacity\n"
        "   of being converted into stone.\n   [1913 Webster]\n\n"
    )
    wordnet_sense = (
        "Horizon \\Ho*ri\"zon\\, n.\n   a layer of soil with properties that differ from others.\n   [WordNet 1.5]\n"
    )
    _write_dictd(tmp_path, "gcide", [("Lapidescent", raw), ("Horizon", wordnet_sense)])
    source = DictdSource(name="gcide", licence="GPL-2.0-or-later", package="dict-gcide", directory=tmp_path)
    records = source.load()
    assert [r.title for r in records] == ["Lapidescent"]
    assert records[0].text == (
        "Lapidescent, a. [L. lapidescens, fr. lapis stone: cf. F. lapidescent, latéral.] Undergoing the process "
        "of becoming stone; having the capacity of being converted into stone."
    )


def test_missing_dictionary_is_unavailable(tmp_path: Path) -> None:
    jargon = DictdSource(name="jargon", licence="public-domain", package="dict-jargon", directory=tmp_path)
    assert not jargon.available()
    assert not WordNetSource(directory=tmp_path).available()
    assert not FortunesSource(directory=tmp_path).available()
    assert jargon.missing() == ["dict-jargon"] and FortunesSource(directory=tmp_path).missing() == [
        "fortunes-min", "fortunes"]


def test_fortunes_read_only_the_listed_files(tmp_path: Path) -> None:
    """Another package's fortune file in the same folder (fortunes-debian-hints) changes nothing; a
    listed file that is absent is named by the package that installs it."""
    quote = "A listed quotation, long enough to be one record of the fortunes source here."
    for name in ("fortunes", "debian-hints"):
        (tmp_path / name).write_text(f"{quote} ({name})\n%\n", encoding="utf-8")
        (tmp_path / f"{name}.dat").write_bytes(b"table")
    source = FortunesSource(directory=tmp_path)
    assert [p.name for p in source.files()] == ["fortunes"]
    assert [r.text for r in source.load()] == [f"{quote} (fortunes)"]
    assert source.available() and source.missing() == ["fortunes-min", "fortunes"]


def test_wordnet_line_parsing() -> None:
    line = (
        "00002137 03 n 02 abstraction 0 abstract_entity 0 010 @ 00001740 n 0000 + 00692347 v 0101 | a general "
        "concept formed by extracting common features from specific examples  "
    )
    offset, lemmas, gloss = parse_wordnet_line(line)  # type: ignore[misc]
    assert (offset, lemmas) == ("00002137", ["abstraction", "abstract entity"])
    assert gloss == "a general concept formed by extracting common features from specific examples"
    assert parse_wordnet_line("  1 This software and database is being provided to you") is None
    adj = "00001740 00 a 01 able(p) 0 005 | (usually followed by `to') having the necessary means or skill"
    assert parse_wordnet_line(adj)[1] == ["able"]  # type: ignore[index]


def test_fortune_splitting_keeps_layout() -> None:
    text = "First line\n\tindented second\n%\n%\nA: answer\nQ: question\n   -- Someone\n%\n"
    assert split_fortunes(text) == ["First line\n        indented second", "A: answer\nQ: question\n   -- Someone"]
    assert split_fortunes("\tindented\n\tblock\n%\n") == ["indented\nblock"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab .", min_size=1, max_size=400).map(str.strip).filter(bool), max_size=12))
def test_chunk_paragraphs_bounds_and_order(paragraphs: list[str]) -> None:
    chunks = list(chunk_paragraphs(paragraphs, min_chars=20, max_chars=150))
    assert all(20 <= len(c) <= 150 for c in chunks)
    # Order and content kept: the chunks' non-space characters are a subsequence of the input's.
    joined = "".join("".join(c.split()) for c in chunks)
    source = iter("".join("".join(p.split()) for p in paragraphs))
    assert all(ch in source for ch in joined)


def test_transforms_keep_the_material_of_the_text() -> None:
    rng = random.Random(0)
    text = " ".join(f"word{i}" for i in range(200))
    assert Counter(shuffle_words(text, rng).split()) == Counter(text.split())
    assert shuffle_words(text, rng) != text
    assert Counter(shuffle_chars(text, rng).replace(" ", "")) == Counter(text.replace(" ", ""))

    mixed_case = "The Quick brown Fox " * 50
    copies = [near_copy(mixed_case, random.Random(seed)) for seed in range(20)]
    assert all(c in (c.lower(), c.upper()) for c in copies)  # case changed wholesale
    assert any("  " in c for c in copies)  # some gaps doubled
    for seed in range(20):
        copy = near_copy(text, random.Random(seed))
        before, after = Counter(text.split()), Counter(copy.casefold().split())
        changed = sum((before - after).values()) + sum((after - before).values())
        assert 1 <= changed <= 2 * 10  # 5% of 200 tokens = 10 edits, each touching at most 2 counts


def test_near_duplicate_filter_estimates_word_set_jaccard() -> None:
    records = SOURCES["python-stdlib-docstrings"].load()[:300]
    f = NearDuplicateFilter()
    sigs = [f.signature(r.text) for r in records]
    errors = [abs(float(np.mean(sigs[i] == sigs[j])) - word_set_jaccard(records[i].text, records[j].text))
              for i in range(0, 300, 7) for j in range(1, 300, 13) if i != j]  # fmt: skip
    assert np.mean(errors) < 0.04 and max(errors) < 0.25  # 64 permutations: std error <= 0.0625

    rng = random.Random(0)
    accepted = [r.text for r in records if f.accept(r.text)]
    assert len(accepted) > 200
    # A near copy (5% of tokens edited, case and spaces changed) of an accepted text is rejected...
    rejected = sum(not f.accept(near_copy(t, rng)) for t in accepted[:100])
    assert rejected >= 95
    # ...a text it has not seen, unrelated, is accepted.
    fresh = [r.text for r in SOURCES["python-docs/topics"].load()[:50]]
    assert sum(f.accept(t) for t in fresh) >= 45


def test_held_out_split_and_target_records() -> None:
    split = held_out_split()
    assert split.target and split.validation and not split.target & split.validation
    assert not split.held_out & set(SOURCES["python-docs/topics"].units())  # providers' topics exclude them
    target, validation = target_records("target"), target_records("validation")
    assert len(target) >= 50 and len(validation) >= 20
    assert {r.key.split("#")[0] for r in target} == set(split.target)
    assert all(r.source == "python-docs/topics" and r.licence == "PSF-2.0" for r in target + validation)


def test_general_text_is_a_deterministic_mixture_without_target_text() -> None:
    texts = general_text(200_000, seed=1)
    assert texts == general_text(200_000, seed=1)
    assert texts != general_text(200_000, seed=2)
    total = sum(len(t) for t in texts)
    assert 200_000 <= total < 200_000 + MAX_RECORD_CHARS
    assert all(MIN_RECORD_CHARS <= len(t) <= MAX_RECORD_CHARS for t in texts)
    # A mixture: every available source gives its share (round-robin; GCIDE is not loaded here, too big).
    available = [s for s in model_text_sources() if s.available()]  # the demo model's text: no licences
    fair_share = len(texts) / len(available)
    for source in available:
        if source.name != "gcide":
            from_source = {r.text for r in source.load()}
            assert sum(t in from_source for t in texts) >= 0.5 * fair_share, source.name
    # Independent check of "no target text": no held-out paragraph of 60+ chars appears in it.
    held_out = [p for r in target_records("target") + target_records("validation") for p in r.text.split("\n\n")]
    held_out = [" ".join(p.split()) for p in held_out if len(p) >= 60]
    corpus = "\n".join(" ".join(t.split()) for t in texts)
    assert not [p for p in held_out if p in corpus]
    grams = set().union(*(word_ngrams(p) for p in held_out))
    assert all(grams.isdisjoint(word_ngrams(t)) for t in texts)


def test_licence_passages_are_sentence_windows_of_the_listed_files(tmp_path: Path) -> None:
    folder = tmp_path / "common-licenses"
    folder.mkdir()
    sentence = "You may copy and distribute verbatim copies of the Program's source code as you receive it."
    (folder / "GPL-2").write_text("GNU GENERAL PUBLIC LICENSE\n\n" + " ".join([sentence] * 12) + "\n\nshort\n")
    (folder / "NOT-LISTED").write_text(" ".join([sentence] * 12))
    (folder / "GPL").symlink_to(folder / "GPL-2")  # links are not read twice
    source = LicencesSource(directory=folder)
    assert source.available() and source.missing() == ["base-files"]  # only one of the listed files is there
    records = source.load()
    assert {r.title for r in records} == {"GPL-2"} and len(records) == 3
    assert all(80 <= len(r.text) <= WINDOW_CHARS and r.text.endswith(".") for r in records)
    assert " ".join(r.text for r in records) == " ".join([sentence] * 12)
    assert not LicencesSource(directory=tmp_path / "absent").available()
    assert sentence_windows("Too short. Also short.") == []


def test_scramble_keeps_layout_and_letters_but_not_word_order() -> None:
    text = "Return a list of the words in the string, using sep as the delimiter string.\n    >>> x.split()"
    out = scramble(text, random.Random(0))
    assert out != text and out.count("\n") == 1 and out.split("\n")[1].startswith("    ")
    assert sorted(w[0] + w[-1] for w in out.split()) == sorted(w[0] + w[-1] for w in text.split())
    assert sorted(out.replace("\n", "")) == sorted(text.replace("\n", ""))
    assert scramble(text, random.Random(0)) == out  # seeded


def test_the_demo_model_is_not_trained_on_provider_only_sources() -> None:
    """Licence texts are built into provider files but not into the target model's training text, so adding
    them changed no model's cache key (and the model has never seen the bulk provider's text)."""
    names = {s.name for s in model_text_sources()}
    assert "licences" in {s.name for s in default_sources()} and "licences" not in names
    assert names == {s.name for s in default_sources()} - {"licences"}


def test_docstring_text_does_not_depend_on_where_python_is_installed() -> None:
    """A signature such as ``platform.architecture(executable=sys.executable)`` prints the interpreter's path;
    such text would make the demo model's training text, and so its key and weights, differ between two
    checkouts of the same commit. No record names this interpreter's or this user's folders."""
    import os
    import sys

    texts = [r.text for r in SOURCES["python-stdlib-docstrings"].load()]
    assert len(texts) > 1000
    for path in {sys.executable, sys.prefix, sys.base_prefix, os.path.expanduser("~"), os.getcwd()}:
        if len(path) > 4:
            assert not [t for t in texts if path in t], path
