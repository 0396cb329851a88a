"""A static-embedding encoder distilled offline from the transformer encoder (model2vec's recipe).

Distillation (once per source encoder and parameters, :func:`ensure_static_encoder`):

1. every vocabulary token t goes through the source encoder alone, as ``[CLS] t [SEP]``, and its
   hidden state ``layer`` at t's position is read: (V, C), C the hidden size;
2. PCA to ``dim`` components (centred on the vocabulary mean; each component's sign fixed so that
   its largest entry is positive, which makes the result independent of the SVD's sign choice);
3. Zipf/SIF weighting: the vocabulary is taken as sorted by frequency (true of BERT's word pieces
   after the special and single-character entries), p(rank r) ∝ 1/(r + 2), weight a / (a + p) with
   a = 1e-4, so the commonest pieces count least;
4. the (V, dim) table is stored as float16 next to a copy of the tokenizer; the encoder computes with
   exactly these float16 values (upcast), in training and in scoring alike.

A text's embedding is then the L2-normalised sum of its word pieces' rows (no special tokens,
truncated to ``max_length`` pieces): one batched tokenisation (token_bags.py) and one
``torch.nn.functional.embedding_bag``; no forward pass. This is the recipe of model2vec
(Tulkens & van Dongen, 2024, "Model2Vec: fast state-of-the-art static embeddings"), written out here
so that it reads the same hidden state as the transformer encoder and runs without a download.

Folder of a distilled encoder (a cache folder under the embedding store's root, and ``encoder/`` in
every bundle trained with it, so a registered model scores without distilling again)::

    static.json                  format, source encoder digest, layer, dim, SIF coefficient, vocabulary size
    static_vectors.safetensors   "vectors" (V, dim) float16
    tokenizer.json ...           the source encoder's tokenizer files
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file, save_file

from marketplace.approx.config import EmbedConfig, canonical_hash
from marketplace.approx.encoder import (
    EncoderRef,
    TextEncoder,
    checked_encoder_path,
    embedding_cache_key,
    load_encoder,
)
from marketplace.approx.token_bags import TokenBags, load_fast_tokenizer, tokenize_bags
from marketplace.errors import ConfigError, ManifestMismatchError

__all__ = [
    "SIF_COEFFICIENT",
    "StaticEncoder",
    "distill_static_vectors",
    "ensure_static_encoder",
    "open_static_encoder",
    "pool_bags",
    "sif_weights",
]

log = logging.getLogger(__name__)

STATIC_FORMAT = 1
SIF_COEFFICIENT = 1e-4  # model2vec's default
MANIFEST = "static.json"
VECTORS = "static_vectors.safetensors"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
_EMBED_CHUNK = 8192  # texts per embedding_bag call: bounds the (N, dim) intermediate


def sif_weights(vocab_size: int, coefficient: float = SIF_COEFFICIENT) -> np.ndarray:
    """(V,) float64 SIF weights a / (a + p_r) under a Zipf law p_r ∝ 1/(r + 2) over token ids r."""
    inv_rank = 1.0 / np.arange(2, vocab_size + 2, dtype=np.float64)
    proba = inv_rank / inv_rank.sum()
    return coefficient / (coefficient + proba)


def _token_states(source: TextEncoder, batch_size: int = 512) -> np.ndarray:
    """(V, C) float64: each vocabulary token's hidden state, read at its own position in ``[CLS] t [SEP]``."""
    tok = source.tokenizer
    vocab_size = len(tok)
    cls_id, sep_id = tok.cls_token_id, tok.sep_token_id
    prefix = [] if cls_id is None else [int(cls_id)]
    suffix = [] if sep_id is None else [int(sep_id)]
    pos = len(prefix)
    out = np.empty((vocab_size, source.dim), dtype=np.float64)
    source.model.eval()
    with torch.inference_mode():
        for start in range(0, vocab_size, batch_size):
            ids = torch.arange(start, min(start + batch_size, vocab_size), dtype=torch.long).unsqueeze(1)  # (B, 1)
            b = ids.shape[0]
            batch = torch.cat([torch.full((b, len(prefix)), prefix[0] if prefix else 0, dtype=torch.long), ids,
                               torch.full((b, len(suffix)), suffix[0] if suffix else 0, dtype=torch.long)], dim=1)
            hidden = source.model(input_ids=batch, attention_mask=torch.ones_like(batch)).last_hidden_state  # (B, 3, C)
            out[start : start + b] = hidden[:, pos].double().numpy()
    return out


def _pca(x: np.ndarray, dim: int) -> np.ndarray:
    """(V, C) -> (V, dim): projection on the top ``dim`` principal components, signs fixed."""
    centred = x - x.mean(axis=0, keepdims=True)
    _u, _s, vt = np.linalg.svd(centred, full_matrices=False)  # vt: (C, C), rows by decreasing variance
    comps = vt[:dim]  # (dim, C)
    flip = np.sign(comps[np.arange(dim), np.abs(comps).argmax(axis=1)])  # make each largest entry positive
    return centred @ (comps * flip[:, None]).T  # (V, dim)


def distill_static_vectors(source: TextEncoder, dim: int) -> np.ndarray:
    """The static table of ``source`` (pooled at its own ``embed_config.layer``): (V, dim) float16."""
    if dim > source.dim:
        raise ConfigError(f"a static encoder of dim {dim} cannot be distilled from an encoder of hidden size "
                          f"{source.dim}; choose dim ≤ {source.dim}")
    states = _token_states(source)  # (V, C)
    table = _pca(states, dim) * sif_weights(states.shape[0])[:, None]  # (V, dim)
    return table.astype(np.float16)


def _params(embed: EmbedConfig) -> dict[str, object]:
    return {"format": STATIC_FORMAT, "layer": embed.layer, "dim": embed.dim, "sif_coefficient": SIF_COEFFICIENT}


def _file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_static_encoder(source: EncoderRef, embed: EmbedConfig, cache_dir: str | Path) -> EncoderRef:
    """The distilled folder for (``source``, ``embed``'s layer and dim) under ``cache_dir``, built on
    first use (seconds on a CPU for MiniLM) and reused after; returns its reference (path + digest).

    The folder is written under a temporary name and renamed, so a reader never sees half of it and two
    processes distilling at once leave one folder (they produce the same bytes).
    """
    key = f"static-{source.digest[:16]}-{canonical_hash(_params(embed))[:8]}"
    root = Path(cache_dir)
    folder = root / key
    if not (folder / MANIFEST).is_file():
        src_path = checked_encoder_path(source)
        log.info("distilling a static encoder (layer %d, dim %s) from %s once, into %s",
                 embed.layer, embed.dim, src_path, folder)
        transformer = load_encoder(source, EmbedConfig(layer=embed.layer, max_length=embed.max_length,
                                                       features="pooled"))
        vectors = distill_static_vectors(transformer, int(embed.dim or 0))
        tmp = root / f".{key}-{uuid.uuid4().hex[:8]}.tmp"
        tmp.mkdir(parents=True)
        save_file({"vectors": vectors}, str(tmp / VECTORS))
        for name in _TOKENIZER_FILES:
            if (src_path / name).is_file():
                shutil.copyfile(src_path / name, tmp / name)
        manifest = {**_params(embed), "source_digest": source.digest, "vocab_size": int(vectors.shape[0]),
                    "vectors_sha256": _file_sha256(tmp / VECTORS)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first: keep its folder
            shutil.rmtree(tmp, ignore_errors=True)
    return EncoderRef.from_path(folder)


def _read_manifest(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("format") != STATIC_FORMAT:
        raise ManifestMismatchError(f"static encoder {folder} has format {manifest.get('format')}, this code reads "
                                    f"{STATIC_FORMAT}; delete the folder (it is rebuilt) or retrain")
    return manifest


def pool_bags(table: torch.Tensor, bags: TokenBags) -> np.ndarray:
    """L2-normalised sum of each text's rows of ``table`` (V, D): (N, D) float32. An empty text is zeros."""
    summed = F.embedding_bag(torch.from_numpy(bags.ids), table, torch.from_numpy(bags.offsets), mode="sum")  # (N, D)
    return F.normalize(summed, p=2.0, dim=-1).numpy()


class StaticEncoder:
    """Texts → L2-normalised sums of distilled word-piece vectors (see the module docstring)."""

    def __init__(self, ref: EncoderRef, embed: EmbedConfig, table: np.ndarray, tokenizer: Any) -> None:
        self.ref = ref
        self.embed_config = embed
        self.table = torch.from_numpy(np.ascontiguousarray(table, dtype=np.float32))  # (V, dim)
        self.tokenizer = tokenizer
        self.dim = int(self.table.shape[1])

    @property
    def cache_key(self) -> str:
        return embedding_cache_key(self.ref, self.embed_config)

    def bags(self, texts: Sequence[str]) -> TokenBags:
        return tokenize_bags(self.tokenizer, texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, unit norm (zeros for a text without word pieces)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), _EMBED_CHUNK):
            chunk = texts[start : start + _EMBED_CHUNK]
            out[start : start + len(chunk)] = pool_bags(self.table, self.bags(chunk))
        return out


def open_static_encoder(ref: EncoderRef, embed: EmbedConfig, *, cache_dir: str | Path | None) -> StaticEncoder:
    """``ref`` is a distilled folder (its digest checked) or the transformer to distil from into
    ``cache_dir`` (once). The folder must have been distilled with ``embed``'s layer and dim."""
    path = checked_encoder_path(ref)
    if not (path / MANIFEST).is_file():
        if cache_dir is None:
            raise ConfigError(f"{path} is a transformer encoder; the static encoder is distilled from it once into "
                              "a cache folder, and none was given")
        ref = ensure_static_encoder(ref, embed, cache_dir)
        path = Path(ref.path)
    manifest = _read_manifest(path)
    if (manifest.get("layer"), manifest.get("dim")) != (embed.layer, embed.dim):
        raise ManifestMismatchError(
            f"static encoder {path} was distilled at layer {manifest.get('layer')} with dim {manifest.get('dim')}, "
            f"but this model needs layer {embed.layer} and dim {embed.dim}; retrain the approximator"
        )
    if _file_sha256(path / VECTORS) != manifest.get("vectors_sha256"):
        raise ManifestMismatchError(f"{path / VECTORS} does not match the digest in its {MANIFEST}; delete the "
                                    "folder (a cache folder is rebuilt on next use) or retrain")
    vectors = load_file(str(path / VECTORS))["vectors"]
    return StaticEncoder(ref, embed, vectors, load_fast_tokenizer(path, embed.max_length))
