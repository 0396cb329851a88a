"""Surface statistics of texts, computed for a whole batch at once: the approximator's second view of a text.

A mean-pooled, L2-normalised embedding forgets how long a text is and smooths away how it is written:
a scrambled copy of a relevant paragraph, a run of code points or a list of short glosses pool to
vectors close to those of clean prose on the same subject, yet a language model's gradient on them is
very different. These few numbers put that back (with the 4 pooled blocks they lift ridge heads' held-out
Spearman from 0.584 to 0.649 on the small demo and from 0.573 to 0.673 on the second market,
benchmarks/results/approximator.md):

    letters, digits, upper case, white space, other (punctuation, symbols) and non-ASCII code points,
    newlines and word starts, each as a share of the text's code points;
    log(1 + mean word length), log(1 + code points), log(1 + words).

A "word" is a maximal run of non-white-space code points. Everything is counted over the whole text
(no truncation) with numpy on the batch's code points laid end to end; the only Python work per text
is its length. An empty text gives zeros for the shares and log(1) = 0 for the logs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["N_TEXT_STATS", "TEXT_STAT_NAMES", "text_statistics"]

TEXT_STAT_NAMES = ("letters", "digits", "upper", "space", "other", "non_ascii", "newlines", "word_starts",
                   "log_mean_word_length", "log_code_points", "log_words")
N_TEXT_STATS = len(TEXT_STAT_NAMES)

# Classes of the ASCII code points (non-ASCII ones are looked at with str methods per distinct code point).
_ASCII = np.arange(128)
_ASCII_CHARS = [chr(c) for c in range(128)]
_IS_LETTER = np.array([c.isalpha() for c in _ASCII_CHARS])
_IS_DIGIT = np.array([c.isdigit() for c in _ASCII_CHARS])
_IS_UPPER = np.array([c.isupper() for c in _ASCII_CHARS])
_IS_SPACE = np.array([c.isspace() for c in _ASCII_CHARS])


def _classes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(letter, digit, upper, space) masks of code points; non-ASCII ones are classified once per
    distinct code point with Python's own rules."""
    masks = []
    ascii_mask = points < 128
    clipped = np.where(ascii_mask, points, 0)
    wide = np.unique(points[~ascii_mask])
    chars = [chr(int(c)) for c in wide]
    for table, rule in ((_IS_LETTER, str.isalpha), (_IS_DIGIT, str.isdigit), (_IS_UPPER, str.isupper),
                        (_IS_SPACE, str.isspace)):
        mask = table[clipped] & ascii_mask
        if wide.size:
            hits = wide[np.fromiter((rule(c) for c in chars), dtype=bool, count=wide.size)]
            mask |= np.isin(points, hits)
        masks.append(mask)
    return masks[0], masks[1], masks[2], masks[3]


def text_statistics(texts: Sequence[str]) -> np.ndarray:
    """(N, N_TEXT_STATS) float32, the statistics above in ``TEXT_STAT_NAMES`` order."""
    n = len(texts)
    out = np.zeros((n, N_TEXT_STATS), dtype=np.float32)
    if n == 0:
        return out
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
    points = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
    if points.size == 0:  # only empty texts: zeros everywhere
        return out
    letter, digit, upper, space = _classes(points)
    newline = points == 10
    starts = np.zeros(lengths.shape[0], dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    # A word starts at a non-space code point that opens its text or follows a space.
    prev_space = np.empty_like(space)
    prev_space[0] = True
    prev_space[1:] = space[:-1]
    prev_space[starts[lengths > 0]] = True
    word_start = ~space & prev_space
    columns = (letter, digit, upper, space, points >= 128, newline, word_start)
    sums = np.zeros((n, len(columns)), dtype=np.float64)
    nonempty = lengths > 0
    stacked = np.stack(columns, axis=1).astype(np.int64)  # (P, 7)
    sums[nonempty] = np.add.reduceat(stacked, starts[nonempty], axis=0)
    denom = np.maximum(lengths, 1)[:, None].astype(np.float64)
    shares = sums / denom
    other = 1.0 - shares[:, 0] - shares[:, 1] - shares[:, 3] - np.where(nonempty, 0.0, 1.0)
    words = sums[:, 6]
    mean_word = np.where(words > 0, (lengths - sums[:, 3]) / np.maximum(words, 1.0), 0.0)
    out[:, 0:4] = shares[:, 0:4]
    out[:, 4] = np.clip(other, 0.0, 1.0)
    out[:, 5:8] = shares[:, 4:7]
    out[:, 8] = np.log1p(mean_word)
    out[:, 9] = np.log1p(lengths)
    out[:, 10] = np.log1p(words)
    return out
