"""The campaign's target data: a held-out slice of the Python documentation that no provider receives.

The demo campaign wants to help a model on *Python programming documentation*. Its target data
are the paragraphs of a fixed quarter of the pydoc topics (``pydoc_data.topics``), chosen by a salted
SHA-256 of the topic key so that the slice never depends on a build's seed: every build, every
``general_text`` call and every test agree on what is held out. A third of the held-out topics form
a validation set (for evaluating data selection on text the labels never saw); the rest is the
target set the campaign values data against.

Held-out text must not leak into provider files through a second route either: stdlib docstrings
repeat sentences of the reference (``str.split`` vs the "string-methods" topic). :class:`TargetGuard`
flags any text that shares a run of :data:`GUARD_NGRAM_WORDS` words with the held-out slice; the
build drops such records.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

from marketplace.corpus.records import SourceRecord
from marketplace.corpus.sources.pydocs import PydocTopicsSource, all_topic_keys

__all__ = [
    "GUARD_NGRAM_WORDS",
    "TARGET_CHUNK_CHARS",
    "TargetGuard",
    "TargetSplit",
    "held_out_split",
    "target_guard",
    "target_records",
]

_SALT = "mkt-corpus-target-v1:"
#: Fraction of the topics held out: 1 / HELD_OUT_EVERY.
HELD_OUT_EVERY = 4
#: Every third held-out topic (in hash order) is validation, the rest target.
VALIDATION_EVERY = 3
#: Target records are single paragraphs or small groups of them, up to this many characters.
TARGET_CHUNK_CHARS = 700
#: Two texts that share this many consecutive words (case-folded) share text.
GUARD_NGRAM_WORDS = 8

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class TargetSplit:
    """Which pydoc topics are held out: ``target`` (campaign) and ``validation``; disjoint."""

    target: frozenset[str]
    validation: frozenset[str]

    @property
    def held_out(self) -> frozenset[str]:
        return self.target | self.validation


def _rank(key: str) -> str:
    return hashlib.sha256((_SALT + key).encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=1)
def held_out_split() -> TargetSplit:
    """The fixed held-out topics of this Python's ``pydoc_data.topics`` (a quarter, at least 3 topics)."""
    keys = sorted(all_topic_keys(), key=_rank)
    n_held = max(3, -(-len(keys) // HELD_OUT_EVERY))
    held = keys[:n_held]
    validation = frozenset(held[::VALIDATION_EVERY])
    return TargetSplit(target=frozenset(held) - validation, validation=validation)


def target_records(which: str = "target") -> list[SourceRecord]:
    """Records of the held-out topics (``which``: ``"target"`` or ``"validation"``), in topic order."""
    split = held_out_split()
    if which not in ("target", "validation"):
        raise ValueError(f"which must be 'target' or 'validation', not {which!r}")
    topics = split.target if which == "target" else split.validation
    return PydocTopicsSource(only=topics, max_chars=TARGET_CHUNK_CHARS).load()


def word_ngrams(text: str, n: int = GUARD_NGRAM_WORDS) -> set[tuple[str, ...]]:
    """Case-folded word n-grams of ``text`` (a text shorter than ``n`` words gives its one short gram)."""
    words = _WORD.findall(text.casefold())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class TargetGuard:
    """Flags text that shares a run of ``n`` words with the held-out slice (target + validation)."""

    def __init__(self, held_out_texts: list[str], n: int = GUARD_NGRAM_WORDS) -> None:
        self.n = n
        self._grams: set[tuple[str, ...]] = set()
        for text in held_out_texts:
            self._grams |= {g for g in word_ngrams(text, n) if len(g) == n}

    def overlaps(self, text: str) -> bool:
        return not self._grams.isdisjoint(word_ngrams(text, self.n))


@functools.lru_cache(maxsize=1)
def target_guard() -> TargetGuard:
    """The guard over the full held-out topics (raw topic text, so no chunking detail can hide a match)."""
    split = held_out_split()
    texts = [r.text for r in PydocTopicsSource(only=split.held_out, max_chars=100_000).load()]
    return TargetGuard(texts)
