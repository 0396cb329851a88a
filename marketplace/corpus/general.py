"""General real text for training the demo target model: a mixture of every available source.

The target model is pretrained briefly on *general* text, so that valuation later measures
what provider data adds for the Python-documentation target. The mixture takes one record from each
available source in turn (so small sources such as the Jargon File weigh as much as GCIDE), in a
seeded order, until ``max_chars`` is reached. The held-out target slice is never included: its
topics are not in the topics source, and any record sharing text with it is dropped. Provider files
may overlap with this text, as real pretraining data overlaps what a market sells.

:func:`python_docs_paragraphs` is the small, Python-only text of test models (all topics included).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from marketplace.corpus.catalog import model_text_sources
from marketplace.corpus.pool import RecordFilter, SourcePool
from marketplace.corpus.records import split_paragraphs
from marketplace.corpus.sources.base import TextSource
from marketplace.corpus.sources.pydocs import pydoc_topics, stdlib_docstrings
from marketplace.corpus.target import TargetGuard, target_guard
from marketplace.errors import ValidationError

__all__ = ["MIN_PARAGRAPH_CHARS", "general_text", "python_docs_paragraphs"]

logger = logging.getLogger(__name__)

MIN_PARAGRAPH_CHARS = 60


def general_text(max_chars: int, seed: int = 0, *, sources: Sequence[TextSource] | None = None) -> list[str]:
    """Paragraph-sized records of real text, about ``max_chars`` characters in all, deterministic for ``seed``.

    Returns fewer characters only when every source is exhausted. Each string is one record
    (a dictionary entry, docstring, reference paragraph group, gloss or fortune), 80-2000 chars.
    """
    if max_chars <= 0:
        raise ValidationError(f"max_chars must be positive, got {max_chars}; ask for the number of characters wanted")
    chosen = [s for s in (sources if sources is not None else model_text_sources()) if s.available()]
    guard = target_guard() if any(s.name == "python-docs/topics" for s in chosen) else TargetGuard([])
    record_filter = RecordFilter(guard)
    pools = [SourcePool(s, seed, record_filter) for s in chosen]
    texts: list[str] = []
    total = 0
    while pools and total < max_chars:
        for pool in list(pools):
            record = pool.draw()
            if record is None:
                pools.remove(pool)
                continue
            texts.append(record.text)
            total += len(record.text)
            if total >= max_chars:
                break
    logger.info("general text: %d records, %d chars from %d sources", len(texts), total, len(chosen))
    return texts


def python_docs_paragraphs(max_chars: int, seed: int = 0) -> list[str]:
    """Paragraphs of Python's own documentation: the pydoc topics and the standard library's
    docstrings, each paragraph reflowed to one line, at least :data:`MIN_PARAGRAPH_CHARS` long and no
    doctest, unique, shuffled by ``seed``, up to ``max_chars`` characters in all.

    Present on every CPython (no Debian package) and quick, so small test models train on it. Plain
    prose paragraphs, unlike :func:`general_text`'s records (which keep code layout and docstring
    signatures): a two-layer model trained on those records concentrates its gradients outside the
    layers LoGra watches, which is no test of LoGra. The held-out target topics are included (a test
    model is no campaign's target model)."""
    topics = pydoc_topics()
    texts = [*(topics[key] for key in sorted(topics)), *stdlib_docstrings()]
    paragraphs = [p for text in texts for p in split_paragraphs(text)
                  if len(p) >= MIN_PARAGRAPH_CHARS and not p.startswith((">>>", "..."))]
    unique = list(dict.fromkeys(paragraphs))
    random.Random(seed).shuffle(unique)
    out: list[str] = []
    total = 0
    for para in unique:
        if total + len(para) > max_chars:
            break
        out.append(para)
        total += len(para)
    return out
