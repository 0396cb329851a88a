"""Hashed n-gram features as an encoder: no model, only the encoder's tokenizer.

A text's vector: its word-piece unigrams and bigrams (the transformer encoder's tokenizer, no special
tokens, truncated to ``max_length`` pieces), each hashed (splitmix64) to one of ``dim`` buckets with
a sign from another bit of the hash (the signed hashing trick, Weinberger et al. 2009, so that
collisions cancel in expectation), counts summed per bucket, sublinear (sign · log1p|count|) and
L2-normalised. Stateless: nothing is fitted, so two machines give the same vectors.

It is the stateless cousin of the TF-IDF + ridge baseline (baselines.py) shaped to the heads'
dense input; benchmarks/results/encoders.md measures what it is worth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from marketplace.approx.config import EmbedConfig
from marketplace.approx.encoder import EncoderRef, checked_encoder_path, embedding_cache_key
from marketplace.approx.token_bags import TokenBags, load_fast_tokenizer, tokenize_bags

__all__ = ["HashedEncoder", "hash_features"]

_BIGRAM_SHIFT = np.uint64(24)  # bigram key = (a + 1) << 24 | b: distinct from every unigram id < 2**24
_EMBED_CHUNK = 8192


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised splitmix64 finaliser over uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_features(bags: TokenBags, dim: int) -> np.ndarray:
    """(N, dim) float32 signed, sublinear, L2-normalised unigram + bigram counts of each text's pieces."""
    n = len(bags)
    ids = bags.ids.astype(np.uint64)
    doc = np.repeat(np.arange(n, dtype=np.int64), bags.lengths)  # (T,) the text of each piece
    same = doc[1:] == doc[:-1]  # (T-1,) consecutive pieces of one text form a bigram
    bigram = ((ids[:-1][same] + np.uint64(1)) << _BIGRAM_SHIFT) | ids[1:][same]
    keys = np.concatenate([ids, bigram])
    rows = np.concatenate([doc, doc[:-1][same]])
    h = _splitmix64(keys)
    bucket = (h % np.uint64(dim)).astype(np.int64)
    sign = np.where((h >> np.uint64(63)) == 1, -1.0, 1.0)
    counts = np.bincount(rows * dim + bucket, weights=sign, minlength=n * dim).reshape(n, dim)
    x = np.sign(counts) * np.log1p(np.abs(counts))
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


class HashedEncoder:
    """Texts → hashed word-piece n-gram vectors of dimension ``embed.dim``."""

    def __init__(self, ref: EncoderRef, embed: EmbedConfig, tokenizer: Any) -> None:
        self.ref = ref
        self.embed_config = embed
        self.tokenizer = tokenizer
        self.dim = int(embed.dim or 0)

    @classmethod
    def from_ref(cls, ref: EncoderRef, embed: EmbedConfig) -> HashedEncoder:
        """The tokenizer of the encoder folder ``ref`` (digest checked)."""
        return cls(ref, embed, load_fast_tokenizer(checked_encoder_path(ref), embed.max_length))

    @property
    def cache_key(self) -> str:
        return embedding_cache_key(self.ref, self.embed_config)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, unit norm (zeros for a text without word pieces)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), _EMBED_CHUNK):
            chunk = texts[start : start + _EMBED_CHUNK]
            out[start : start + len(chunk)] = hash_features(tokenize_bags(self.tokenizer, chunk), self.dim)
        return out
