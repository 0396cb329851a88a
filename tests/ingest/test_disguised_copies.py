"""Disguised copies are linked to their original: the matching form (marketplace.ingest.skeleton) sees
through zero-width characters, Cyrillic and Greek look-alikes, fullwidth forms and combining marks, while
the catalog stores each text as given (both engines)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import Sample
from marketplace.ingest import DedupParams, IngestOptions, ingest_one_file, normalise_text
from marketplace.ingest.minhash import tokenize
from marketplace.ingest.skeleton import CONFUSABLES, _table, match_skeleton
from tests.support.ingest import distinct_texts, write_jsonl

N = 30
_CYRILLIC = str.maketrans("aceopxyABEKMHOPCTX", "асеорхуАВЕКМНОРСТХ")
_GREEK = str.maketrans("ABEZHIKMNOPTYXov", "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧον")


def _zero_width(text: str) -> str:
    """A zero-width space, joiner or soft hyphen inside every word of 4+ letters."""
    marks = ["\u200b", "\u200d", "\u00ad", "\u2060", "\ufeff"]
    return " ".join(w[:2] + marks[i % len(marks)] + w[2:] if len(w) >= 4 else w
                    for i, w in enumerate(text.split(" ")))


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _combining(text: str) -> str:
    return "".join(c + "\u0301" if c in "aeiou" else c + "\u0336" if c in "st" else c for c in text)


def _mixed(text: str) -> str:
    return _zero_width(_combining(text.translate(_CYRILLIC)).upper().translate(_GREEK))


DISGUISES: dict[str, Callable[[str], str]] = {
    "zero-width": _zero_width,
    "cyrillic": lambda t: t.translate(_CYRILLIC),
    "greek": lambda t: t.upper().translate(_GREEK),
    "fullwidth": _fullwidth,
    "combining": _combining,
    "mixed": _mixed,
}


def test_the_skeleton_translates_like_the_whole_text_at_once() -> None:
    """The fast path (only non-ASCII runs through the table) against the obvious whole-string form."""
    import random
    import unicodedata

    rng = random.Random(3)
    alphabet = [*"abc XYZ 019_-.,\t\n", *CONFUSABLES, "\u200b", "\u00ad", "\ufeff", "\u0301", "\u20dd", "Ａ", "ﬁ",
                "é", "ß", "İ", "ǅ", "中", "😀", "\u2028"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(3000)]
    texts += [t for t in distinct_texts(400, min_words=5, seed=3) if not t.isascii()]
    for text in texts:
        expected = text.lower() if text.isascii() else (
            unicodedata.normalize("NFKD", text).translate(_table()).casefold())
        assert match_skeleton(text) == expected, repr(text)


def test_the_skeleton_of_each_disguise_is_the_original_one() -> None:
    text = "Copy this paragraph, Exactly as it stands: 42 words of Python documentation."
    want = tokenize(text)
    for name, disguise in DISGUISES.items():
        disguised = disguise(text)
        assert disguised != text
        assert tokenize(disguised) == want, name
    assert match_skeleton("plain ASCII Text") == "plain ascii text"
    assert tokenize("naïve café") == tokenize("naive cafe")
    assert tokenize("0 1 O l") == ["0", "1", "o", "l"]  # ASCII letters and digits are never conflated


@pytest.mark.parametrize("disguise", sorted(DISGUISES))
def test_disguised_copies_are_linked_and_stored_as_given(session_factory: sessionmaker[Session], tmp_path: Path,
                                                         disguise: str) -> None:
    texts = distinct_texts(N + 10, min_words=15)
    originals, unrelated = texts[:N], texts[N:]
    options = IngestOptions(dedup_params=DedupParams())
    a = write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in originals])
    copies = [DISGUISES[disguise](t) for t in originals]
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": t} for t in copies + unrelated])
    assert ingest_one_file(session_factory, a, "original", options).status == "accepted"
    result = ingest_one_file(session_factory, b, "disguiser", options)
    assert result.status == "accepted", result.message
    assert result.exact_duplicates + result.near_duplicates == N  # 30 of 30 disguised copies linked...
    with session_factory() as s:
        rows = s.execute(select(Sample.record_index, Sample.text, Sample.duplicate_of_id)
                         .where(Sample.submission_id == result.submission_id).order_by(Sample.record_index)).all()
        owners = dict(s.execute(select(Sample.id, Sample.text).where(Sample.submission_id != result.submission_id))
                      .tuples().all())
    for index, stored, dup_of in rows:
        if index < N:
            assert owners[dup_of] == normalise_text(originals[index])  # ... each to its own original
            assert stored == normalise_text(copies[index])  # the text is kept as given
        else:
            assert dup_of is None  # ... and no unrelated text is linked
