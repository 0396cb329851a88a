"""Vectorised MinHash signatures and LSH band keys for a batch of texts.

Pipeline for a batch of ``n`` texts (all numpy, no Python loop over tokens):

1. tokens: the ``\\w+`` words of each text's matching form (:func:`marketplace.ingest.skeleton.match_skeleton`:
   lower case for ASCII; format characters, combining marks and look-alike letters normalised away
   otherwise), one C-level ``findall`` per text;
2. token hashes: ``pandas.util.hash_array`` (SipHash with a fixed key, so stable across processes,
   unlike ``hash()``), ``(M,)`` uint64 over the ``M`` tokens of the whole batch;
3. shingle hashes: the ``k`` consecutive token hashes of each window mixed into one uint64,
   ``(S,)`` with windows that cross a text boundary dropped; a text with fewer than ``k`` tokens
   gets one shingle made of all its tokens; a text with no token gets none;
4. signature: for each of ``P`` permutations ``h_p(x) = (a_p * x + b_p) mod 2^64`` (``a_p`` odd, so
   a bijection of uint64), the high 32 bits of the minimum over the text's shingles, ``(n, P)``
   uint32, computed in chunks of shingles (``np.minimum.reduceat``) to bound memory;
5. band keys: the ``r`` rows of each of ``b`` bands mixed into one int64 together with the band index
   and a salt derived from the parameters hash, ``(n, b)`` int64, so keys of different parameter sets
   never meet in the database.

:func:`signatures_reference` is the slow, obvious implementation the tests compare against.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from pandas.util import hash_array

from marketplace.ingest.params import DedupParams
from marketplace.ingest.skeleton import match_skeleton

__all__ = [
    "EMPTY_SLOT",
    "MinHasher",
    "estimate_jaccard",
    "signatures_reference",
    "tokenize",
]

_WORD = re.compile(r"\w+")
EMPTY_SLOT = np.uint32(0xFFFFFFFF)  # the signature value of a text without any shingle
_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio odd constant (Fibonacci hashing)
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)  # splitmix64 multiplier
_CHUNK_SHINGLES = 4096  # (128, 4096) uint64 temporaries = 4 MiB: ~25% faster than 16 MiB ones, which leave the cache


def tokenize(text: str) -> list[str]:
    """Word tokens of the matching form (case, zero-width characters, accents and look-alike letters never
    matter); punctuation and whitespace are separators, so they never matter either."""
    return _WORD.findall(match_skeleton(text))


# For ASCII text, \w is [A-Za-z0-9_]: map every other byte to a space and split (3x faster than the
# regex). Tokens come out as bytes; hash_array hashes str as its UTF-8 bytes, so both agree.
_ASCII_WORD_BYTES = bytes(
    c if (48 <= c <= 57 or 97 <= c <= 122 or c == 95) else 32 if c < 128 else c for c in range(256)
)


def _tokens_for_hashing(text: str) -> list[str] | list[bytes]:
    if text.isascii():
        return text.lower().encode("ascii").translate(_ASCII_WORD_BYTES).split()
    return _WORD.findall(match_skeleton(text))


def _mix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64 finaliser: a bijective avalanche on uint64 (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX2
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class MinHasher:
    """Signatures and band keys for one :class:`DedupParams` (the permutations are drawn once)."""

    def __init__(self, params: DedupParams) -> None:
        self.params = params
        rng = np.random.Generator(np.random.PCG64(params.seed))
        self._a = rng.integers(1, 2**63, size=params.num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._b = rng.integers(0, 2**63, size=params.num_perm, dtype=np.uint64)
        salt = int(params.sha256()[:16], 16)
        band_ids = np.arange(params.bands, dtype=np.uint64)
        with np.errstate(over="ignore"):
            self._band_seeds = _mix64(band_ids * _MIX + np.uint64(salt))

    # ---- shingles ----
    def shingle_hashes(self, texts: Sequence[str]) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
        """Shingle hashes of a batch: ``(S,)`` uint64 and ``(n,)`` int64 shingle counts per text."""
        k = self.params.shingle_size
        token_lists = [_tokens_for_hashing(t) for t in texts]
        n_tokens = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
        flat: list[str | bytes] = [tok for toks in token_lists for tok in toks]
        if not flat:
            return np.zeros(0, dtype=np.uint64), np.zeros(len(texts), dtype=np.int64)
        tok_hash = hash_array(np.array(flat, dtype=object), categorize=True)  # (M,) uint64
        if k == 1:
            return tok_hash.astype(np.uint64, copy=False), n_tokens
        total = tok_hash.shape[0]
        # Window starting at token i covers tokens i..i+k-1 of the same text.
        ends = np.cumsum(n_tokens)  # exclusive end of each text in the flat token array
        starts = ends - n_tokens
        owner = np.repeat(np.arange(len(texts)), n_tokens)  # (M,) text of each token
        with np.errstate(over="ignore"):
            mixed = tok_hash.copy()
            for j in range(1, k):
                shifted = np.zeros(total, dtype=np.uint64)
                shifted[: total - j] = tok_hash[j:]
                mixed = _mix64(mixed * _MIX + shifted)
            # A short text (fewer than k tokens, at least 1) gets one shingle of all its tokens.
            short = (n_tokens > 0) & (n_tokens < k)
            if short.any():
                for t in np.flatnonzero(short):
                    h = tok_hash[starts[t]]
                    for j in range(1, int(n_tokens[t])):
                        h = _mix64(np.asarray(h * _MIX + tok_hash[starts[t] + j], dtype=np.uint64))
                    mixed[starts[t]] = _mix64(np.asarray(h * _MIX + np.uint64(k), dtype=np.uint64))
        pos_in_text = np.arange(total) - starts[owner]
        valid = pos_in_text + k <= n_tokens[owner]
        valid |= short[owner] & (pos_in_text == 0)
        counts = np.where(n_tokens >= k, n_tokens - k + 1, np.minimum(n_tokens, 1))
        return mixed[valid], counts.astype(np.int64)

    # ---- signatures ----
    def signatures(self, texts: Sequence[str]) -> NDArray[np.uint32]:
        """MinHash signatures ``(n, num_perm)`` uint32; a text without shingles is all :data:`EMPTY_SLOT`."""
        shingles, counts = self.shingle_hashes(texts)
        return self.signatures_from_shingles(shingles, counts)

    def signatures_from_shingles(self, shingles: NDArray[np.uint64], counts: NDArray[np.int64]) -> NDArray[np.uint32]:
        n = counts.shape[0]
        out = np.full((n, self.params.num_perm), EMPTY_SLOT, dtype=np.uint32)
        nonempty = np.flatnonzero(counts > 0)
        if nonempty.size == 0:
            return out
        seg_starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        cum = np.cumsum(counts[nonempty])  # shingles up to and including each non-empty text
        # Chunks of consecutive non-empty texts with about _CHUNK_SHINGLES shingles (at least one text).
        i = 0
        while i < nonempty.size:
            done = int(cum[i - 1]) if i else 0
            j = max(i + 1, int(np.searchsorted(cum, done + _CHUNK_SHINGLES, side="right")))
            texts_idx = nonempty[i:j]
            lo = int(seg_starts[texts_idx[0]])
            hi = int(seg_starts[texts_idx[-1]] + counts[texts_idx[-1]])
            block = shingles[lo:hi]
            # (P, m) layout: reduceat along the contiguous axis is ~5x faster than (m, P) along axis 0.
            hashed = np.multiply(self._a[:, None], block[None, :])  # (P, m) uint64, wraps mod 2^64
            np.add(hashed, self._b[:, None], out=hashed)
            # The minimum of the full 64-bit values, then its high 32 bits: same estimator, one pass less.
            mins = np.minimum.reduceat(hashed, seg_starts[texts_idx] - lo, axis=1)  # (P, t)
            out[texts_idx] = (mins.T >> np.uint64(32)).astype(np.uint32)
            i = j
        return out

    # ---- LSH bands ----
    def band_keys(self, signatures: NDArray[np.uint32]) -> NDArray[np.int64]:
        """``(n, bands)`` int64 keys: band ``j`` hashes rows ``j*r .. j*r+r-1`` of the signature."""
        r = self.params.rows_per_band
        n = signatures.shape[0]
        sig = signatures[:, : self.params.bands * r].astype(np.uint64).reshape(n, self.params.bands, r)
        with np.errstate(over="ignore"):
            h = np.broadcast_to(self._band_seeds, (n, self.params.bands)).copy()
            for row in range(r):
                h = _mix64(h * _MIX + sig[:, :, row])
        return h.view(np.int64)


def estimate_jaccard(sig: NDArray[np.uint32], others: NDArray[np.uint32]) -> NDArray[np.float64]:
    """Fraction of agreeing slots between ``sig`` ``(P,)`` and each row of ``others`` ``(m, P)``."""
    return (others == sig[None, :]).mean(axis=1)


def signatures_reference(params: DedupParams, texts: Sequence[str]) -> NDArray[np.uint32]:
    """Slow, obvious MinHash with the same hash family (Python ints, explicit sets). Tests only."""
    hasher = MinHasher(params)
    k = params.shingle_size
    mask64 = (1 << 64) - 1
    out = np.full((len(texts), params.num_perm), int(EMPTY_SLOT), dtype=np.uint32)

    def mix(x: int) -> int:
        x ^= x >> 30
        x = (x * 0xBF58476D1CE4E5B9) & mask64
        x ^= x >> 27
        x = (x * 0x94D049BB133111EB) & mask64
        return x ^ (x >> 31)

    for t, text in enumerate(texts):
        toks = tokenize(text)
        if not toks:
            continue
        th = [int(v) for v in hash_array(np.array(toks, dtype=object), categorize=True)]
        shingles: set[int] = set()
        if len(toks) >= k:
            for i in range(len(toks) - k + 1):
                h = th[i]
                for j in range(1, k):
                    h = mix((h * int(_MIX) + th[i + j]) & mask64)
                shingles.add(h)
        else:
            h = th[0]
            for j in range(1, len(toks)):
                h = mix((h * int(_MIX) + th[j]) & mask64)
            shingles.add(mix((h * int(_MIX) + k) & mask64) if k > 1 else h)
        for p in range(params.num_perm):
            a, b = int(hasher._a[p]), int(hasher._b[p])
            out[t, p] = min((a * s + b) & mask64 for s in shingles) >> 32
    return out
