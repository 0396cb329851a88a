"""A small in-memory near-duplicate filter for the build: the ingest's MinHash, over word sets, with
LSH banding in a dict.

The corpus is meant to hold duplicates only where a provider makes them on purpose (copycat), so
the build drops a drawn record whose word set is too close to one drawn before (the standard
library documents ``bytes.count`` and ``bytearray.count`` in nearly the same words; some fortunes
appear in two files). Similarity is the Jaccard index of the sets of lower-cased ``\\w+`` words, the
measure the ingest's near-duplicate detection uses, estimated with the ingest's own signatures
(:class:`marketplace.ingest.minhash.MinHasher`, single-word shingles) over :data:`NUM_PERM`
permutations; records are compared when one of :data:`BANDS` bands of :data:`ROWS` signature slots
agrees (a pair at Jaccard 0.6 is compared with probability ~0.89, at 0.7 ~0.99). Deterministic: the
permutations come from a fixed seed and the word hashes are process-independent.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from marketplace.ingest.minhash import MinHasher, estimate_jaccard, tokenize
from marketplace.ingest.params import DedupParams

__all__ = ["NearDuplicateFilter", "word_set_jaccard"]

NUM_PERM = 64
BANDS = 16
ROWS = NUM_PERM // BANDS


def word_set_jaccard(a: str, b: str) -> float:
    """Exact Jaccard index of the word sets of ``a`` and ``b`` (the quantity the filter estimates)."""
    wa, wb = set(tokenize(a)), set(tokenize(b))
    return len(wa & wb) / len(wa | wb) if wa | wb else 1.0


class NearDuplicateFilter:
    """Remembers the texts it accepted; rejects a text whose estimated Jaccard with one of them >= ``threshold``."""

    def __init__(self, threshold: float = 0.6, seed: int = 1) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self._hasher = MinHasher(DedupParams(shingle_size=1, num_perm=NUM_PERM, bands=BANDS, rows_per_band=ROWS,
                                             threshold=threshold, seed=seed))
        self._signatures: list[NDArray[np.uint32]] = []
        self._buckets: dict[int, list[int]] = {}  # band key (band index mixed in) -> accepted positions

    def signature(self, text: str) -> NDArray[np.uint32]:
        """MinHash signature of the word set of ``text``: shape (NUM_PERM,)."""
        sig: NDArray[np.uint32] = self._hasher.signatures([text])[0]
        return sig

    def accept(self, text: str) -> bool:
        """True (and remembered) when no accepted text is a near-duplicate of ``text``."""
        sig = self.signature(text)
        keys = self._hasher.band_keys(sig[None, :])[0].tolist()
        known = [self._signatures[i] for i in sorted({i for key in keys for i in self._buckets.get(key, ())})]
        if known and estimate_jaccard(sig, np.stack(known)).max() >= self.threshold:
            return False
        index = len(self._signatures)
        self._signatures.append(sig)
        for key in keys:
            self._buckets.setdefault(key, []).append(index)
        return True
