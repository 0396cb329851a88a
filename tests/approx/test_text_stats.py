"""The text statistics of stacked features: the batched numpy computation against a plain per-text one."""

from __future__ import annotations

import math

import numpy as np

from marketplace.approx.text_stats import N_TEXT_STATS, TEXT_STAT_NAMES, text_statistics
from tests.support.approx import pydoc_paragraphs


def _reference(text: str) -> list[float]:
    n = max(len(text), 1)
    words = text.split()
    letters, digits = sum(c.isalpha() for c in text), sum(c.isdigit() for c in text)
    space = sum(c.isspace() for c in text)
    other = (len(text) - letters - digits - space) / n
    mean_word = sum(len(w) for w in words) / len(words) if words else 0.0
    return [letters / n, digits / n, sum(c.isupper() for c in text) / n, space / n, other,
            sum(ord(c) > 127 for c in text) / n, text.count("\n") / n, len(words) / n,
            math.log1p(mean_word), math.log1p(len(text)), math.log1p(len(words))]


def test_batched_statistics_equal_a_per_text_computation() -> None:
    texts = [
        *pydoc_paragraphs()[:20],
        "",  # empty
        "   \n\t ",  # white space only
        "x",
        "Ünïcödé wörds — “quoted” ΑΒΓ δέλτα 中文字符 😀 emoji\u2003em-space\u00a0nbsp",
        "MiXeD 123 CASE\n\nnew\r\nlines\u2028sep",
        "tab\tseparated\tcolumns 4.5e-3 ≤ 7",
    ]
    got = text_statistics(texts)
    assert got.shape == (len(texts), N_TEXT_STATS) == (len(texts), len(TEXT_STAT_NAMES))
    want = np.array([_reference(t) for t in texts], dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_statistics_of_a_text_do_not_depend_on_its_batch() -> None:
    texts = [*pydoc_paragraphs()[:8], "Ζ ω", ""]
    alone = np.stack([text_statistics([t])[0] for t in texts])
    np.testing.assert_array_equal(text_statistics(texts), alone)
    assert text_statistics([]).shape == (0, N_TEXT_STATS)
