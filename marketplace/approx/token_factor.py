"""The exact length factor of token-weighted LinFiK, which a token-weighted approximator multiplies by.

A label set with ``weighting="token"`` holds y(x) = u(x) · T(x)/L: u(x) is plain per-sample LinFiK,
T(x) the number of tokens x's loss is taken over (prompt masked, after truncation) and L the label
config's ``max_length``. T(x) is exact and cheap (one tokenizer pass over the text); u(x) is the part
that needs learning, and it is the part a mean-pooled sentence embedding can predict: both are
averages over the text's tokens. So an approximator trained on such a label set learns u = y / (T/L)
and multiplies its prediction by the exact factor when it scores: ŷ(x) = û(x) · T(x)/L. Asking the
heads for y directly makes them guess a text's length from a mean-pooled embedding. On the default
demo both ways reach about the same held-out Spearman in the labels' units (0.589 directly, 0.586
with the factor; 0.704 for u itself), but only the exact factor carries the length into the payouts:
learned directly, the demo still paid the fortunes (10.5%) above FOLDOC (6.9%), as per-sample labels
do; with the factor FOLDOC gets 12.1% and the fortunes 11.5%, as the exact token-weighted labels rank
them (benchmarks/results/label_configs_token.md).

:class:`TokenFactor` is that factor: the target model's tokenizer (copied into the model bundle, so a
registered model scores on its own), L and the truncation length. It computes T(x)/L with the function
the labeler uses (:func:`marketplace.valuation.tokenization.token_length_factor`), so the factor of a
text is the one its exact label was multiplied by. For texts without a prompt, :meth:`TokenFactor.counts`
takes a fast path that gives the same numbers (tested against that function): one ``encode_batch_fast``
of the tokenizer's Rust backend (no offsets, no per-token Python), T(x) = min(n(x), truncation) - 1,
since then every token but the first is a loss target; texts with a prompt need the offsets and go
through the labeler's function itself. Counting is cheap next to a transformer encoder but not next to
a static one or to re-scoring cached embeddings with a new version's heads, so scoring keeps the counts
in a content-addressed store (:func:`open_count_store`, the embedding store's format with one float32
column, exact for counts up to 2**24) keyed by content hash and prompt length.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marketplace.approx.embedding_store import EmbeddingStore
from marketplace.errors import ConfigError, ManifestMismatchError, NotFoundError, ValidationError
from marketplace.valuation.tokenization import length_factor, loss_token_counts

__all__ = ["TokenFactor", "count_key", "open_count_store"]

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                    "merges.txt", "vocab.txt", "added_tokens.json", "tokenizer.model", "spiece.model")


def _digest_tokenizer(folder: Path) -> str:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name in _TOKENIZER_FILES)
    if not files:
        raise NotFoundError(f"{folder} holds no tokenizer files ({', '.join(_TOKENIZER_FILES[:2])}, ...)")
    outer = hashlib.sha256()
    for f in files:
        outer.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).hexdigest().encode() + b"\n")
    return outer.hexdigest()


def _load_fast_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    from marketplace.valuation.target_model import load_pretrained

    tokenizer = load_pretrained(AutoTokenizer, folder, "tokenizer")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"the tokenizer in {folder} is not a fast tokenizer; prompt masking needs offsets")
    return tokenizer


@dataclass(frozen=True)
class TokenFactor:
    """T(x)/L for texts, with the target model's tokenizer. ``truncation`` = min(L, context length)."""

    tokenizer: Any  # transformers.PreTrainedTokenizerFast
    max_length: int  # L, the label config's max_length: the normaliser
    truncation: int  # tokens kept per text, as the labeler truncates
    digest: str  # sha256 over the tokenizer files

    @classmethod
    def from_target_model(cls, model_dir: str | Path, max_length: int) -> TokenFactor:
        """From a target model folder (its tokenizer and config.json; the weights are not loaded)."""
        from transformers import AutoConfig

        from marketplace.valuation.target_model import check_checkpoint_folder, context_length_of, load_pretrained

        folder = Path(model_dir).expanduser().resolve()
        if not folder.is_dir():
            raise NotFoundError(
                f"target model folder {folder} (the label set's checkpoint) does not exist; token-weighted labels "
                "need its tokenizer to count each sample's tokens"
            )
        if max_length < 2:
            raise ValidationError(f"max_length must be at least 2, got {max_length}")
        check_checkpoint_folder(folder, weights=False)
        config = load_pretrained(AutoConfig, folder, "model config")
        return cls(_load_fast_tokenizer(folder), int(max_length), min(int(max_length), context_length_of(config)),
                   _digest_tokenizer(folder))

    @functools.cached_property
    def _backend(self) -> Any:
        """A private copy of the Rust tokenizer, without truncation or padding (lengths are clipped after)."""
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())
        backend.no_truncation()
        backend.no_padding()
        return backend

    def counts(self, texts: Sequence[str], prompt_chars: Sequence[int | None] | None = None) -> np.ndarray:
        """(N,) int64 T(x): the tokens each text's loss is taken over (0 when a prompt fills it)."""
        _check_prompts(texts, prompt_chars)
        out = np.zeros(len(texts), dtype=np.int64)
        if not len(texts):
            return out
        prompted = np.zeros(len(texts), dtype=bool) if prompt_chars is None else np.fromiter(
            (bool(p) for p in prompt_chars), dtype=bool, count=len(texts))
        plain = np.flatnonzero(~prompted).tolist()
        if plain:
            chunk = texts if len(plain) == len(texts) else [texts[i] for i in plain]
            encs = self._backend.encode_batch_fast(list(chunk), add_special_tokens=True)
            n = np.fromiter((len(e) for e in encs), dtype=np.int64, count=len(plain))
            out[plain] = np.maximum(np.minimum(n, self.truncation) - 1, 0)  # every token but the first
        if prompt_chars is not None and prompted.any():
            rows = np.flatnonzero(prompted).tolist()
            out[rows] = loss_token_counts(self.tokenizer, [texts[i] for i in rows], [prompt_chars[i] for i in rows],
                                          truncation=self.truncation)
        return out

    def weights(self, texts: Sequence[str], prompt_chars: Sequence[int | None] | None = None) -> np.ndarray:
        """(N,) float64 T(x)/L: 0 for a text whose loss has no tokens (e.g. a prompt longer than L);
        equal to :func:`marketplace.valuation.tokenization.token_length_factor`."""
        return length_factor(self.counts(texts, prompt_chars), self.max_length)

    def weights_cached(self, store: EmbeddingStore, content_hashes: Sequence[str],
                       texts: Sequence[str] | Mapping[int, str], prompt_chars: Sequence[int | None]) -> np.ndarray:
        """:meth:`weights` through a count store (:func:`open_count_store`): only texts whose count is
        not cached are tokenised, so ``texts`` (position → text) needs only those."""
        if len(prompt_chars) != len(content_hashes):
            raise ValidationError(f"{len(content_hashes)} content hashes but {len(prompt_chars)} prompt lengths")
        keys = [count_key(h, p) for h, p in zip(content_hashes, prompt_chars, strict=True)]
        missing: dict[str, int] = {}
        for pos in np.flatnonzero(~store.contains(keys)).tolist():
            missing.setdefault(keys[pos], pos)
        if missing:
            positions = list(missing.values())
            try:
                chunk = [texts[i] for i in positions]
            except (KeyError, IndexError) as exc:
                raise ValidationError(f"the token count at position {exc.args[0]} is not cached and its text was "
                                      "not given") from exc
            counts = self.counts(chunk, [prompt_chars[i] for i in positions])
            store.put([keys[i] for i in positions], counts.astype(np.float32)[:, None])
        return length_factor(store.get(keys)[:, 0], self.max_length)

    def cache_key(self) -> str:
        return f"tokens-{self.digest[:16]}-{self.truncation}"

    def meta(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "truncation": self.truncation, "tokenizer_digest": self.digest}

    def save(self, folder: str | Path) -> dict[str, Any]:
        """Write the tokenizer files to ``folder``; returns the metadata :meth:`load` checks them against."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(out)
        meta = self.meta()
        meta["tokenizer_digest"] = _digest_tokenizer(out)  # of the copy: what load() will read
        (out / "token_factor.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        return meta

    @classmethod
    def load(cls, folder: str | Path, meta: dict[str, Any]) -> TokenFactor:
        root = Path(folder)
        if not root.is_dir():
            raise NotFoundError(f"{root}: the bundle's token factor folder is missing; the bundle is incomplete")
        digest = _digest_tokenizer(root)
        if digest != meta.get("tokenizer_digest"):
            raise ManifestMismatchError(
                f"{root}: the tokenizer files do not match the digest the bundle recorded; the bundle was edited"
            )
        return cls(_load_fast_tokenizer(root), int(meta["max_length"]), int(meta["truncation"]), digest)


def _check_prompts(texts: Sequence[str], prompt_chars: Sequence[int | None] | None) -> None:
    if prompt_chars is not None and len(prompt_chars) != len(texts):
        raise ValidationError(f"{len(texts)} texts but {len(prompt_chars)} prompt lengths")


def count_key(content_hash: str, prompt_chars: int | None) -> str:
    """Where a text's token count is cached: its content hash, or with a prompt a hash of both (the
    same text counts differently with another prompt length)."""
    if not prompt_chars:
        return content_hash
    return hashlib.sha256(f"{content_hash}:{int(prompt_chars)}".encode()).hexdigest()


def open_count_store(root: str | Path, factor: TokenFactor) -> EmbeddingStore:
    """The shared cache of T(x) for one tokenizer (by digest) and truncation length."""
    manifest: dict[str, object] = {"tokenizer_digest": factor.digest, "truncation": factor.truncation}
    return EmbeddingStore(root, factor.cache_key(), manifest, 1, dtype="float32")
