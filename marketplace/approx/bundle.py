"""A trained approximator on disk (the "model bundle") and the predictor built from it.

Layout of a bundle folder (what the MLflow pyfunc carries as its artifact)::

    bundle.json          format, mode, ApproxConfig, encoder reference, label scaler, lineage, dim
    heads.safetensors    MLP heads w1 (K, D, H), b1 (K, H), w2 (K, H), b2 (K,) or linear heads w (K, D),
                         b (K,), float32; the feature shift and scale x_shift, x_scale (D,) when the
                         features have text statistics (feature_scaling.py); the label scaler's knots
    encoder/             fine-tuned encoder + tokenizer (mode "finetune"), or the distilled static
                         encoder (static_encoder.py: its table + tokenizer, ~16 MB) it was trained with
    token_factor/        the target model's tokenizer (token-weighted label sets only, see token_factor.py)

The frozen transformer encoder is *referenced* (source + digest), not copied: 90 MB per version would
buy nothing, and the digest check on load refuses a different encoder with a clear error. A static
encoder is copied: it is small, and a bundle then scores on any machine without distilling again. The
encoder kind and its parameters are part of the hashed config (``config.embed``), so a bundle can only
ever be scored with the encoder it was trained with (:class:`Approximator` refuses another).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from marketplace.approx.config import ApproxConfig, check_config_hash, read_json_manifest, upgrade_config
from marketplace.approx.encoder import (
    Encoder,
    EncoderRef,
    TextEncoder,
    digest_model_dir,
    embedding_cache_key,
    open_encoder,
    resolve_encoder_path,
)
from marketplace.approx.feature_scaling import apply_feature_scaling
from marketplace.approx.heads import head_keys, predict_numpy
from marketplace.approx.scaling import LabelScaler
from marketplace.approx.token_factor import TokenFactor
from marketplace.errors import ManifestMismatchError, ValidationError

__all__ = ["BUNDLE_FORMAT", "Approximator", "ModelBundle", "Prediction", "check_encoder_fits", "load_bundle",
           "save_bundle"]

log = logging.getLogger(__name__)

BUNDLE_FORMAT = 1
_SCALING_KEYS = ("x_shift", "x_scale")


@dataclass
class ModelBundle:
    config: ApproxConfig
    encoder_ref: EncoderRef
    head_params: dict[str, np.ndarray]
    scaler: LabelScaler
    lineage: dict[str, str] = field(default_factory=dict)
    encoder_dir: Path | None = None  # fine-tuned weights (mode "finetune")
    # Set when the labels were token-weighted: the heads predict per-token value u and a score is
    # u · T(x)/L (see token_factor.py). None: the heads predict the label itself.
    token_factor: TokenFactor | None = None
    # (shift, scale) (D,) applied to the features before the heads (feature_scaling.py); None: identity.
    feature_scaling: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_heads(self) -> int:
        return int(self.head_params[head_keys(self.head_params)[0]].shape[0])

    @property
    def dim(self) -> int:
        return int(self.head_params[head_keys(self.head_params)[0]].shape[1])


def save_bundle(bundle: ModelBundle, out_dir: str | Path, *, encoder: TextEncoder | None = None) -> Path:
    """Write ``bundle`` to ``out_dir`` (created). In finetune mode ``encoder`` is saved under encoder/."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ref = bundle.encoder_ref
    if bundle.config.mode == "finetune":
        if encoder is None:
            raise ValueError("a fine-tuned bundle needs the encoder to save")
        enc_dir = out / "encoder"
        encoder.model.save_pretrained(enc_dir)  # type: ignore[operator]  # a transformers PreTrainedModel
        encoder.tokenizer.save_pretrained(enc_dir)
        # The fine-tuned copy is what this bundle's predictions depend on: reference it by digest.
        ref = EncoderRef(source="path", path="encoder", digest=digest_model_dir(enc_dir))
        bundle.encoder_ref = ref
        bundle.encoder_dir = enc_dir
    elif _encoder_in_bundle(bundle.config):
        enc_dir = out / "encoder"
        shutil.copytree(resolve_encoder_path(ref), enc_dir, dirs_exist_ok=True)
        ref = EncoderRef(source="path", path="encoder", digest=digest_model_dir(enc_dir))
        if ref.digest != bundle.encoder_ref.digest:
            raise ManifestMismatchError(f"the copy of the static encoder in {enc_dir} does not hash like its source "
                                        f"{bundle.encoder_ref.path}; the source changed while it was copied, retrain")
        bundle.encoder_ref = ref
        bundle.encoder_dir = enc_dir
    tensors = {k: np.ascontiguousarray(bundle.head_params[k], dtype=np.float32)
               for k in head_keys(bundle.head_params)}
    if bundle.feature_scaling is not None:
        tensors.update(zip(_SCALING_KEYS, (np.ascontiguousarray(a, dtype=np.float32) for a in bundle.feature_scaling),
                           strict=True))
    tensors.update(bundle.scaler.arrays())
    save_file(tensors, str(out / "heads.safetensors"))
    meta = {
        "format": BUNDLE_FORMAT,
        "mode": bundle.config.mode,
        "config": bundle.config.model_dump(mode="json"),
        "config_hash": bundle.config.config_hash(),
        "encoder": ref.to_dict(),
        "scaler": bundle.scaler.to_dict(),
        "lineage": bundle.lineage,
        "dim": bundle.dim,
        "n_heads": bundle.n_heads,
        "token_factor": bundle.token_factor.save(out / "token_factor") if bundle.token_factor else None,
    }
    (out / "bundle.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    return out


def load_bundle(path: str | Path) -> ModelBundle:
    """The bundle in folder ``path``, refused when its format is another or its config was edited."""
    root = Path(path)
    meta = read_json_manifest(root / "bundle.json", missing=f"{root} is not an ALinFiK model bundle (no bundle.json)")
    if meta.get("format") != BUNDLE_FORMAT:
        raise ManifestMismatchError(
            f"bundle {root} has format {meta.get('format')}, this code reads {BUNDLE_FORMAT}; retrain or upgrade"
        )
    check_config_hash(meta, f"bundle {root}")
    config = ApproxConfig.model_validate(upgrade_config(meta["config"]))
    arrays = load_file(str(root / "heads.safetensors"))
    ref = EncoderRef.from_dict(meta["encoder"])
    encoder_dir = None
    if _encoder_in_bundle(config):
        encoder_dir = root / ref.path
        ref = EncoderRef(source="path", path=str(encoder_dir), digest=ref.digest)
    factor_meta = meta.get("token_factor")
    return ModelBundle(
        config=config,
        encoder_ref=ref,
        head_params={k: arrays[k] for k in head_keys(arrays)},
        scaler=LabelScaler.from_parts(meta["scaler"], arrays),
        lineage=dict(meta.get("lineage", {})),
        encoder_dir=encoder_dir,
        token_factor=TokenFactor.load(root / "token_factor", factor_meta) if factor_meta else None,
        feature_scaling=(arrays["x_shift"], arrays["x_scale"]) if "x_shift" in arrays else None,
    )


def _encoder_in_bundle(config: ApproxConfig) -> bool:
    """Whether the bundle carries its encoder (fine-tuned weights, a static table) under encoder/."""
    return config.mode == "finetune" or config.embed.encoder == "static"


@dataclass(frozen=True)
class Prediction:
    score: np.ndarray  # (N,) LinFiK units: inverse transform of the ensemble mean
    spread: np.ndarray  # (N,) std over heads, LinFiK units (the uncertainty)


def _describe(embed_kind: str, digest: str) -> str:
    return f"the {embed_kind} encoder {digest[:12]}"


def check_encoder_fits(bundle: ModelBundle, encoder: Encoder) -> None:
    """Refuse an encoder other than the one ``bundle`` was trained with: another kind or embedding
    configuration, or (frozen mode) other weights. One line: what the model needs, what it was given."""
    want = bundle.config.embed
    same_weights = bundle.config.mode != "frozen" or encoder.ref.digest == bundle.encoder_ref.digest
    if encoder.embed_config != want or not same_weights:
        raise ManifestMismatchError(
            f"this model was trained with {_describe(want.encoder, bundle.encoder_ref.digest)} "
            f"(config {want.config_hash()[:8]}) and cannot score with "
            f"{_describe(encoder.embed_config.encoder, encoder.ref.digest)} (config "
            f"{encoder.embed_config.config_hash()[:8]}); score with the model's own encoder or retrain"
        )


class Approximator:
    """Predicts LinFiK from text (or from cached embeddings, in frozen mode)."""

    def __init__(self, bundle: ModelBundle, *, device: str = "cpu", encoder: Encoder | None = None) -> None:
        """``encoder``: an already loaded encoder with the bundle's weights (skips loading it again); one
        of another kind, configuration or digest is refused (ManifestMismatchError)."""
        self.bundle = bundle
        self.device = device
        if encoder is not None:
            check_encoder_fits(bundle, encoder)
        self._encoder: Encoder | None = encoder
        self._lock = threading.Lock()  # shard tasks on a thread pool share one predictor

    @property
    def mode(self) -> str:
        return self.bundle.config.mode

    @property
    def encoder(self) -> Encoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = open_encoder(self.bundle.encoder_ref, self.bundle.config.embed, device=self.device)
            return self._encoder

    @property
    def embedding_cache_key(self) -> str | None:
        """Key of the shared embedding cache this model can read (None: fine-tuned, embeds itself)."""
        if self.mode != "frozen":
            return None
        return embedding_cache_key(self.bundle.encoder_ref, self.bundle.config.embed)

    @property
    def token_factor(self) -> TokenFactor | None:
        return self.bundle.token_factor

    def factor(self, texts: Sequence[str], prompt_chars: Sequence[int | None] | None = None) -> np.ndarray | None:
        """T(x)/L of each text for a token-weighted model (what :meth:`predict_embeddings` multiplies by);
        None for a model of per-sample labels."""
        if self.bundle.token_factor is None:
            return None
        return self.bundle.token_factor.weights(texts, prompt_chars)

    def predict_embeddings(self, x: np.ndarray, factor: np.ndarray | None = None) -> Prediction:
        """x: (N, D) sentence embeddings from this model's encoder; ``factor``: (N,) from :meth:`factor`,
        required (and only accepted) when the model is token-weighted."""
        if x.ndim != 2 or x.shape[1] != self.bundle.dim:
            raise ManifestMismatchError(
                f"embeddings of shape {x.shape} do not fit heads trained on dimension {self.bundle.dim}"
            )
        if (factor is None) != (self.bundle.token_factor is None):
            raise ValidationError(
                "this model learned token-weighted labels: pass each text's factor (Approximator.factor) to score"
                if factor is None else "this model learned per-sample labels; it takes no token factor"
            )
        features = apply_feature_scaling(x, self.bundle.feature_scaling)
        z = predict_numpy(self.bundle.head_params, features).astype(np.float64)  # (K, N)
        scaler = self.bundle.scaler
        score = scaler.inverse(z.mean(axis=0))
        spread = scaler.inverse(z).std(axis=0) if z.shape[0] > 1 else np.zeros(z.shape[1])
        if factor is not None:
            factor = np.asarray(factor, dtype=np.float64)
            if factor.shape != score.shape:
                raise ValidationError(f"{factor.shape[0]} token factors for {score.shape[0]} embeddings")
            score, spread = score * factor, spread * factor
        return Prediction(score=score, spread=spread)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.embed(texts)

    def predict_texts(self, texts: Sequence[str], prompt_chars: Sequence[int | None] | None = None) -> Prediction:
        """``prompt_chars``: per text, the length of its prompt (masked out of the loss), or None."""
        return self.predict_embeddings(self.embed(texts), self.factor(texts, prompt_chars))
