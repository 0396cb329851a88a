"""Frozen, validated parameters of the ALinFiK approximator and of the embedding step.

Both objects are hashed (:meth:`ApproxConfig.config_hash`, :meth:`EmbedConfig.config_hash`) and the
hash is stamped on what they produce: the embedding cache folder, the model bundle, the MLflow run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from marketplace.errors import ManifestMismatchError, NotFoundError

__all__ = [
    "ApproxConfig",
    "EmbedConfig",
    "EncoderKind",
    "Features",
    "HeadKind",
    "Mode",
    "Precision",
    "canonical_hash",
    "check_config_hash",
    "read_json_manifest",
    "upgrade_config",
]

Mode = Literal["frozen", "finetune"]
Precision = Literal["float32", "bfloat16", "int8"]
EncoderKind = Literal["transformer", "static", "hashed"]
Features = Literal["pooled", "stacked"]
HeadKind = Literal["ridge", "mlp"]
# Output dimension of the encoders whose dimension is a choice (a transformer's is its hidden size).
DEFAULT_DIMS: dict[str, int] = {"static": 256, "hashed": 1024}


def canonical_hash(payload: dict[str, object]) -> str:
    """sha256 of the canonical JSON of ``payload`` (sorted keys, no whitespace)."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def read_json_manifest(path: Path, *, missing: str) -> dict[str, Any]:
    """A JSON file the approximator wrote (a bundle's bundle.json, a run's outcome.json); NotFoundError
    with the message ``missing`` (what the folder is not, what to do) when it is absent."""
    if not path.is_file():
        raise NotFoundError(missing)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def check_config_hash(manifest: dict[str, Any], where: str) -> None:
    """Refuse a manifest whose ``config`` no longer matches the ``config_hash`` recorded with it."""
    if canonical_hash(manifest["config"]) != manifest["config_hash"]:
        raise ManifestMismatchError(f"{where}: the config does not match its recorded hash; the file was edited")


class EmbedConfig(BaseModel):
    """How a text becomes a vector: which encoder, which hidden layer is pooled, tokenisation length,
    batching and the numeric precision.

    ``encoder``: ``transformer`` (default) runs the Hugging Face encoder (all-MiniLM-L6-v2 unless
    another folder is given) and mean-pools hidden state ``layer``. ``static`` looks every token up in
    a table distilled once from that same encoder (each vocabulary token's hidden state ``layer``,
    PCA to ``dim``, Zipf/SIF weighting; static_encoder.py) and sums the rows: no forward pass, about
    two orders of magnitude faster. ``hashed`` hashes the encoder tokenizer's word-piece unigrams and
    bigrams into ``dim`` signed buckets (sublinear counts; hashed_encoder.py): no model at all.
    All three give L2-normalised vectors. Measured on the default demo's 2,400 labels (held-out Spearman,
    benchmarks/results/encoders.md): transformer 0.670, static 0.636, hashed 0.565. The default stays the
    transformer because the static encoder is not within 0.03 of it; ``static`` is the fast option.

    ``layer``: the hidden state that is mean-pooled (0 = token embeddings, i = output of block i,
    -1 = the last block, i.e. exactly the sentence-transformers embedding of all-MiniLM-L6-v2); for a
    static encoder, the hidden state its vocabulary table is read from.
    The default, block 3 of 6, is a measured choice: MiniLM's last block is trained for *semantic*
    similarity and drops the lexical detail LinFiK depends on. On the default demo campaign's earlier
    labels block 4 gave 0.704 against 0.628 for the last block (benchmarks/results/scoring.md); on the
    current default labels, blocks 2, 3 and 4 gave 0.673, 0.679 and 0.657 on the default demo and 0.616,
    0.615 and 0.589 on the small one (mean of three head seeds, with ``mse`` early stopping;
    benchmarks/results/approximator.md), so block 3. Blocks after ``layer`` are dropped from the model,
    which also makes embedding faster (3 of 6 blocks run).

    ``features``: what a transformer's vector holds. ``stacked`` (the default for a transformer): the
    masked mean of *every* hidden state from 0 (token embeddings) to ``layer``, each L2-normalised,
    laid end to end, then the text's surface statistics (text_stats.py): (layer + 1) x 384 + 11 numbers
    for MiniLM at block 3, from the same single forward pass. ``pooled``: hidden state ``layer`` alone
    (the only choice for static and hashed encoders and for ``mode finetune``; what models trained before
    the option existed used). Measured with ridge heads (benchmarks/results/approximator.md): stacked
    lifts held-out Spearman from 0.584 to 0.649 on the small demo, 0.652 to 0.656 on the default demo and
    0.573 to 0.673 on the second market.

    ``precision``: float32 by default. Measured on the same labels, int8 dynamic quantisation embeds
    1.5x faster with the same held-out Spearman (+0.002), so it is a safe ``--precision int8``; it is
    not the default because quantised kernels differ between CPUs (the cache key and the model's
    lineage record the choice). bfloat16 gives the same Spearman but is 6x slower on CPUs without
    native bf16. Static and hashed encoders compute in float32 only.

    ``layer``, ``max_length``, ``precision``, ``encoder`` and ``dim`` change the numbers, so they are
    part of the cache key; ``batch_size`` does not (beyond float noise) and is left out. ``encoder`` and
    ``dim`` are left out of the dump (and so of every hash) at their defaults, so configs written before
    they existed keep their hashes and their meaning.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    layer: int = Field(default=3, ge=-1, le=256, description="Hidden state to pool; -1 = last block.")
    max_length: int = Field(default=256, ge=8, le=4096, description="Tokens per text (MiniLM was trained with 256).")
    batch_size: int = Field(default=64, ge=1, le=4096)
    precision: Precision = "float32"
    encoder: EncoderKind = Field(default="transformer", description="transformer, static or hashed (see above).")
    features: Features | None = Field(
        default=None, description="stacked (every hidden state up to layer, + text statistics; the transformer "
        "default) or pooled (hidden state layer only); see above.")
    dim: int | None = Field(
        default=None, ge=2, le=65536,
        description="Output dimension of a static (PCA components, default 256) or hashed (buckets, default 1024) "
                    "encoder; unset for a transformer (its hidden size).",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_dim(cls, data: Any) -> Any:
        """A static or hashed encoder's ``dim`` is written down (its default filled in), so a stored
        config keeps its meaning if a default changes."""
        if isinstance(data, dict) and data.get("encoder") in DEFAULT_DIMS and data.get("dim") is None:
            data = {**data, "dim": DEFAULT_DIMS[data["encoder"]]}
        if isinstance(data, dict) and data.get("features") is None:
            data = {**data, "features": "stacked" if data.get("encoder", "transformer") == "transformer" else "pooled"}
        return data

    @model_validator(mode="after")
    def _fits_the_encoder(self) -> EmbedConfig:
        if self.encoder == "transformer" and self.dim is not None:
            raise ValueError(f"a transformer encoder's dimension is its hidden size; drop dim={self.dim} "
                             "or choose encoder static or hashed")
        if self.encoder != "transformer" and self.features == "stacked":
            raise ValueError(f"stacked features pool a transformer's hidden states; the {self.encoder} encoder has "
                             "one vector per text (use features pooled)")
        if self.encoder != "transformer" and self.precision != "float32":
            raise ValueError(f"the {self.encoder} encoder computes in float32; precision {self.precision} "
                             "applies to the transformer encoder only")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("encoder") == "transformer":
            data.pop("encoder")
        if data.get("dim") is None:
            data.pop("dim", None)
        return data

    def config_hash(self) -> str:
        payload: dict[str, object] = {"layer": self.layer, "max_length": self.max_length,
                                      "precision": self.precision, "pooling": "mean+l2"}
        if self.encoder != "transformer":
            payload.update(encoder=self.encoder, dim=self.dim)
        if self.features == "stacked":  # pooled, the former only choice, keeps the hashes it had
            payload["features"] = "stacked"
        return canonical_hash(payload)


class ApproxConfig(BaseModel):
    """Everything that decides what the approximator learns (hashed onto the registered model).

    Head (``head``): an ensemble of ``n_heads`` regressors on the encoder's vector, each fitted with its
    own Poisson bootstrap weights; the prediction is the ensemble mean and the spread (std) is the
    uncertainty used for active labeling.

    - ``ridge`` (the default in frozen mode): linear ridge regressions on the training and validation
      rows, the penalty chosen from a grid by exact leave-one-out error (train.py, ``fit_ridge``).
      Measured against the MLP on the same stacked features and splits: 0.649 against 0.591 on the
      small demo, 0.656 against 0.644 on the default demo, 0.673 against 0.616 on the second market
      (benchmarks/results/approximator.md): with a few hundred to a few thousand labels the MLP's extra
      freedom costs more than it buys.
    - ``mlp``: two-layer MLPs ``D -> hidden_dim -> 1`` (GELU, dropout) with seed-derived initialisation
      and dropout masks, trained with MSE on standardised labels + ``rank_weight`` × RankNet loss on
      random pairs of each batch and early stopping on the validation split (``mode finetune`` needs it,
      and models trained before the option existed used it).

    With stacked features the text statistics are standardised on the training rows and multiplied by
    ``stats_weight`` before any head sees them (the embeddings are unit vectors whose coordinates are
    ~0.05; a statistic's raw scale would decide its weight otherwise); the shift and scale are stored in
    the model.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Mode = "frozen"
    head: HeadKind | None = Field(default=None, description="ridge (frozen default) or mlp (finetune); see above.")
    seed: int = 0
    hidden_dim: int = Field(default=128, ge=1, le=8192)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    n_heads: int = Field(default=5, ge=1, le=64)
    bootstrap: bool = Field(default=True, description="Poisson(1) bootstrap weights per head (bagging).")
    lr: float = Field(default=1e-3, gt=0.0)
    encoder_lr: float = Field(default=2e-5, gt=0.0, description="Encoder learning rate (finetune mode).")
    weight_decay: float = Field(default=1e-2, ge=0.0)
    batch_size: int = Field(default=128, ge=2)
    max_epochs: int = Field(default=200, ge=1)
    patience: int = Field(default=20, ge=1, description="Epochs without validation improvement before stopping.")
    early_stopping: Literal["spearman", "mse"] = Field(
        default="mse", description="Validation metric that picks each head's best epoch (mse: measured "
        "steadier than spearman on a validation split of a few hundred labels)."
    )
    rank_weight: float = Field(default=0.5, ge=0.0, description="Weight of the pairwise ranking term.")
    label_transform: Literal["standard", "quantile"] = Field(
        default="quantile",
        description="standard: (y - mean) / std; quantile: rank-Gaussian, inverted by interpolation.",
    )
    stats_weight: float = Field(default=0.1, gt=0.0, le=100.0,
                                description="Weight of the standardised text statistics (stacked features).")
    test_fraction: float = Field(default=0.2, gt=0.0, lt=0.9)
    val_fraction: float = Field(default=0.1, gt=0.0, lt=0.9)
    min_labels: int = Field(default=20, ge=8)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)

    @model_validator(mode="before")
    @classmethod
    def _defaults_for_mode(cls, data: Any) -> Any:
        """Fine-tuning trains an MLP on one pooled hidden state; frozen mode defaults to ridge on stacked
        features. Both defaults are written down, so a stored config keeps its meaning."""
        if not isinstance(data, dict):
            return data
        finetune = data.get("mode") == "finetune"
        if data.get("head") is None:
            data = {**data, "head": "mlp" if finetune else "ridge"}
        embed = data.get("embed")
        if finetune and (embed is None or (isinstance(embed, dict) and embed.get("features") is None)):
            data = {**data, "embed": {**(embed or {}), "features": "pooled"}}
        return data

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> ApproxConfig:
        if self.mode == "finetune" and (self.head != "mlp" or self.embed.features != "pooled"):
            raise ValueError("mode finetune trains an MLP head on one pooled hidden state; use head mlp and "
                             "features pooled (the finetune defaults)")
        if self.mode == "finetune" and self.embed.encoder != "transformer":
            raise ValueError(f"mode finetune trains a transformer encoder; the {self.embed.encoder} encoder has "
                             "nothing to fine-tune (use mode frozen)")
        if self.test_fraction + self.val_fraction >= 0.9:
            raise ValueError(
                f"test_fraction + val_fraction = {self.test_fraction + self.val_fraction:.2f} leaves too few "
                "training labels; keep their sum under 0.9"
            )
        return self

    def config_hash(self) -> str:
        return canonical_hash(self.model_dump(mode="json"))


# Fields added after the first saved configs, with the value that reproduces what those configs did.
# A stored config is verified against its hash as written, then upgraded with these, so an old model
# keeps its meaning even when a new default differs.
_LEGACY_EMBED_DEFAULTS: dict[str, object] = {"layer": -1, "features": "pooled"}
_LEGACY_DEFAULTS: dict[str, object] = {"head": "mlp"}


def upgrade_config(raw: dict[str, Any]) -> dict[str, Any]:
    """A stored ApproxConfig dict with fields it predates filled in with their legacy values."""
    out = dict(raw)
    for key, value in _LEGACY_DEFAULTS.items():
        out.setdefault(key, value)
    embed = dict(out.get("embed") or {})
    for key, value in _LEGACY_EMBED_DEFAULTS.items():
        embed.setdefault(key, value)
    out["embed"] = embed
    return out
