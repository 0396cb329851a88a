"""A small in-memory near-duplicate filter for the build: MinHash over word sets + LSH banding.

The corpus is meant to hold duplicates only where a provider makes them on purpose (copycat), so
the build drops a drawn record whose word set is too close to one drawn before (the standard
library documents ``bytes.count`` and ``bytearray.count`` in nearly the same words; some fortunes
appear in two files). Similarity is the Jaccard index of the sets of lower-cased ``\\w+`` words,
the measure the ingest's near-duplicate detection uses, estimated with :data:`NUM_PERM` hash
permutations; records are compared when one of :data:`BANDS` bands of :data:`ROWS` signature slots
agrees (a pair at Jaccard 0.6 is compared with probability ~0.89, at 0.7 ~0.99).

Vectorised with numpy (one (words x permutations) product per record, no Python loop over words
beyond hashing them), deterministic: CRC-32 word hashes and permutations from a fixed seed.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
from numpy.typing import NDArray

__all__ = ["NearDuplicateFilter", "word_set_jaccard"]

NUM_PERM = 64
BANDS = 16
ROWS = NUM_PERM // BANDS
_PRIME = np.uint64((1 << 61) - 1)
_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.casefold()))


def word_set_jaccard(a: str, b: str) -> float:
    """Exact Jaccard index of the word sets of ``a`` and ``b`` (the quantity the filter estimates)."""
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa | wb else 1.0


class NearDuplicateFilter:
    """Remembers the texts it accepted; rejects a text whose estimated Jaccard with one of them >= ``threshold``."""

    def __init__(self, threshold: float = 0.6, seed: int = 1) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        rng = np.random.default_rng(seed)
        # Affine permutations h -> ((a*h + b) mod 2^64) mod p, as datasketch does: a must span the
        # whole field (a small a keeps a*h from wrapping and every permutation orders words alike).
        self._a = rng.integers(1, int(_PRIME), size=NUM_PERM, dtype=np.uint64)  # (P,)
        self._b = rng.integers(0, int(_PRIME), size=NUM_PERM, dtype=np.uint64)  # (P,)
        self._signatures: list[NDArray[np.uint64]] = []
        self._buckets: dict[tuple[int, bytes], list[int]] = {}

    def signature(self, text: str) -> NDArray[np.uint64]:
        """MinHash signature of the word set of ``text``: shape (NUM_PERM,)."""
        words = _words(text) or {""}
        hashes = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in words), dtype=np.uint64, count=len(words))
        return ((hashes[:, None] * self._a[None, :] + self._b[None, :]) % _PRIME).min(axis=0)  # (W, P) -> (P,)

    def accept(self, text: str) -> bool:
        """True (and remembered) when no accepted text is a near-duplicate of ``text``."""
        sig = self.signature(text)
        keys = [(band, sig[band * ROWS : (band + 1) * ROWS].tobytes()) for band in range(BANDS)]
        candidates = {i for key in keys for i in self._buckets.get(key, ())}
        for i in sorted(candidates):
            if float(np.mean(self._signatures[i] == sig)) >= self.threshold:
                return False
        index = len(self._signatures)
        self._signatures.append(sig)
        for key in keys:
            self._buckets.setdefault(key, []).append(index)
        return True
