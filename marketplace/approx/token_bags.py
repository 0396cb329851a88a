"""Batched word-piece tokenisation into flat "bags" of token ids, the input of the static and hashed encoders.

One call of the fast tokenizer (``tokenizers.Tokenizer.encode_batch_fast``: Rust, all cores, no
offsets) tokenises a whole batch; the ids of every text are laid end to end in one array with the
length of each text beside it, which is what ``torch.nn.functional.embedding_bag`` and
``np.add.reduceat`` take. The only Python work per text is reading its id list.

Special tokens are not added (a static encoder sums word pieces; [CLS]/[SEP] would add the same
vector to every text) and each text is truncated to ``max_length`` word pieces.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marketplace.errors import ConfigError

__all__ = ["TokenBags", "load_fast_tokenizer", "tokenize_bags"]


@dataclass(frozen=True)
class TokenBags:
    """Token ids of N texts, end to end."""

    ids: np.ndarray  # (T,) int64, T = lengths.sum()
    lengths: np.ndarray  # (N,) int64, tokens per text (0 for an empty text)

    @property
    def offsets(self) -> np.ndarray:
        """(N,) int64: where each text's ids start in ``ids``."""
        out = np.zeros(self.lengths.shape[0], dtype=np.int64)
        np.cumsum(self.lengths[:-1], out=out[1:])
        return out

    def __len__(self) -> int:
        return int(self.lengths.shape[0])


def load_fast_tokenizer(folder: str | Path, max_length: int) -> Any:
    """The ``tokenizer.json`` of an encoder folder as a ``tokenizers.Tokenizer`` (plain JSON, nothing
    unpickled), truncating to ``max_length`` tokens, without padding."""
    from tokenizers import Tokenizer

    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"{Path(folder)} has no tokenizer.json; the static and hashed encoders need a fast "
                          "tokenizer (save the encoder's tokenizer with transformers to write one)")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer


def tokenize_bags(tokenizer: Any, texts: Sequence[str]) -> TokenBags:
    """Tokenise ``texts`` in one batch (no special tokens, truncated as the tokenizer is set)."""
    if not len(texts):
        return TokenBags(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    ids = [e.ids for e in tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
    return TokenBags(flat, lengths)
