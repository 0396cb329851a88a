"""Frozen, validated parameter objects for LinFiK labeling, and the stable hashes stamped on outputs.

:class:`LinFiKConfig` holds everything that changes a label's *value* (ranks, seed, preconditioner,
step sizes, truncation, stored dtype). Execution knobs that only change speed or float rounding
(batch size, shard size, device, task runner) are deliberately *not* in it, so they never change the
config hash. :class:`ProjectionConfig` is the part that fixes the LoGra projection; it has its own
hash because train and target gradients must share one projection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ABSENT_MEANS",
    "DEFAULT_MODULE_PATTERNS",
    "CheckpointSpec",
    "LinFiKConfig",
    "Preconditioner",
    "ProjectionConfig",
    "Reference",
    "StoreDtype",
    "Weighting",
    "stable_hash",
]

Preconditioner = Literal["identity", "fisher", "kfac"]
Weighting = Literal["sample", "token"]
Reference = Literal["none", "pool"]
StoreDtype = Literal["float32", "float16"]

# The attention and MLP projections of every block: GPT-2 (Conv1D) and Llama-style (nn.Linear) names.
# fnmatch patterns over ``model.named_modules()`` names; a pattern that matches nothing is harmless,
# so one tuple serves both families. ``lm_head`` and embeddings are never watched by default.
DEFAULT_MODULE_PATTERNS: tuple[str, ...] = (
    "*.attn.c_attn",
    "*.attn.c_proj",
    "*.mlp.c_fc",
    "*.mlp.c_proj",
    "*.self_attn.q_proj",
    "*.self_attn.k_proj",
    "*.self_attn.v_proj",
    "*.self_attn.o_proj",
    "*.mlp.gate_proj",
    "*.mlp.up_proj",
    "*.mlp.down_proj",
)


def stable_hash(payload: Any) -> str:
    """sha256 hex of a JSON-able payload with sorted keys (stable across runs and processes)."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def config_hash(self) -> str:
        return stable_hash(self.model_dump(mode="json"))


class ProjectionConfig(_Frozen):
    """The LoGra projection: per watched layer, P_in (r_in × n_in) and P_out (r_out × n_out).

    Ranks are capped per layer by the layer's dimensions; a side whose capped rank equals its
    dimension is the identity (nothing to compress there). Matrices are Gaussian / sqrt(r) from a
    CPU generator seeded by (seed, layer name, side), so E[PᵀP] = I and inner products are
    preserved in expectation (Johnson–Lindenstrauss).

    ``include_bias``: a watched layer's bias is treated as one more input column of constant 1
    (homogeneous coordinate), so its gradient Σ_t δ_t is projected by P_out and kept as the last
    column of the layer's block (r_out × (r_in + 1)). On GPT-2-style models the biases carry much
    of ⟨ḡ_Y, g(x)⟩ (see benchmarks/results/linfik_quality.md); Llama-style layers have none.
    """

    rank_in: int = Field(default=64, ge=1, le=65536)
    rank_out: int = Field(default=64, ge=1, le=65536)
    seed: int = Field(default=0, ge=0)
    module_patterns: tuple[str, ...] = DEFAULT_MODULE_PATTERNS
    include_bias: bool = True

    @field_validator("module_patterns")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not p.strip() for p in value):
            raise ValueError("module_patterns must be a non-empty list of non-empty fnmatch patterns")
        return value


class CheckpointSpec(_Frozen):
    """An extra checkpoint (a causal-LM folder) and its step size η_c, summed into LinFiK."""

    path: str = Field(min_length=1)
    eta: float = Field(gt=0.0)

    @classmethod
    def parse(cls, text: str) -> CheckpointSpec:
        """Parse ``DIR:ETA`` (the CLI form); the last colon splits, so paths may contain colons."""
        path, sep, eta = text.rpartition(":")
        if not sep or not path:
            raise ValueError(f"checkpoint {text!r} is not DIR:ETA (for example ./ckpt-500:1e-3)")
        try:
            eta_value = float(eta)
        except ValueError as exc:
            raise ValueError(f"checkpoint {text!r}: step size {eta!r} is not a number") from exc
        return cls(path=path, eta=eta_value)


#: What a stored config that leaves an option out means: the option's value before its default changed
#: (token weighting, pool reference, cosine), so a stored summary is read with these, not today's defaults.
ABSENT_MEANS: dict[str, Any] = {"weighting": "sample", "reference": "none", "cosine": False}
#: Options the summary (and so the hash) leaves out when they have their :data:`ABSENT_MEANS` value, so
#: configs made before the option existed keep their hash. ``cosine`` existed from the start and is always
#: stored, so its old default keeps its hash without this.
_OMITTED_AT_LEGACY_VALUE = ("weighting", "reference")


class LinFiKConfig(_Frozen):
    """What a LinFiK label means. Its hash is stamped on the label set and every store manifest.

    LinFiK(x) = Σ_c η_c ⟨H_c⁻¹ ḡ_Y,c , g_c(x)⟩ over checkpoints c: the campaign's target model with
    ``eta`` first, then each of ``checkpoints`` with its own η. ``eta`` defaults to 1e-3: LinFiK is
    then the predicted drop of the mean target loss (nats per token) after one SGD step of that size
    on x alone, which stays in the first-order regime for small models.

    - ``preconditioner``: ``identity`` (plain LinFiK), ``fisher`` (per layer H_l = mean g̃g̃ᵀ over the
      *labeled train* gradients + λI, as in the LoGra paper), or ``kfac`` (H_l ≈ A_l ⊗ S_l in the
      projected space, A from train activations, S from train output gradients).
    - ``damping_ratio``: λ = damping_ratio × mean eigenvalue of H_l (0.1 by default, as LoGra).
    - ``cosine`` (the default): replace g_c(x) by g_c(x)/‖g_c(x)‖ (norm over all watched layers of
      checkpoint c), so a sample's value is the direction of its step, not the size of its gradient (how
      much of a batch it fills still counts, through ``weighting`` ``token``). Why it is the default:
      docs/valuation.md, "The default label". ``False`` is plain LinFiK's dot product.
    - ``max_length``: sequences are truncated to this many tokens (and to the model's context).
    - ``store_dtype``: dtype of the stored train gradients (float16 halves the disk; computation and
      scores stay float32).
    - ``weighting``: how much of a training step a sample is. ``sample``: one sample, its
      mean token loss counted once, whatever its length. ``token`` (the default): the sample's tokens, as in the usual
      language-model loss averaged over every token of a batch; each checkpoint's score is multiplied
      by T(x) / ``max_length``, T(x) being the number of tokens x's loss is taken over (after
      truncation), which is η⟨H⁻¹ḡ_Y, ∇Σ_t ℓ_t(x)⟩ / ``max_length``: the drop from one step on a batch
      of ``max_length`` tokens of which x fills T(x). Value then adds up over a text's tokens, so
      cutting a text into many short samples does not multiply what it earns, and a provider's
      many short samples do not outweigh longer, equally useful ones. An approximator trained on
      such labels learns the per-token value and multiplies by the exact T(x)/``max_length`` when
      it scores (marketplace.approx.token_factor). ``sample`` leaves the config hash as it was
      before the option existed.
    """

    projection: ProjectionConfig = ProjectionConfig()
    preconditioner: Preconditioner = "identity"
    damping_ratio: float = Field(default=0.1, gt=0.0)
    cosine: bool = True
    eta: float = Field(default=1e-3, gt=0.0)
    checkpoints: tuple[CheckpointSpec, ...] = ()
    max_length: int = Field(default=256, ge=2, le=1_000_000)
    store_dtype: StoreDtype = "float32"
    weighting: Weighting = "token"
    reference: Reference = "pool"
    """What the target gradient is measured against. ``none``: plain LinFiK, η⟨H⁻¹ḡ_Y, g(x)⟩.
    ``pool`` (the default): η⟨H⁻¹(ḡ_Y − ḡ_pool), g(x)⟩ per checkpoint, ḡ_pool being the mean
    projected gradient of the label set's own train samples (the labeled subsample, a stratified sample
    of the market's payable pool). Plain LinFiK is positive for most texts, because every text's
    gradient shares a generic language-modelling direction; the pool reference takes out the part of
    ḡ_Y that the average pool sample already moves along. Positive then means that a step on x lowers
    the target loss more than a step on an average pool sample would; the labels sum over the labeled
    samples to about η N ⟨H⁻¹(ḡ_Y − ḡ_pool), ḡ_pool⟩. Needs every train shard before any score (as a
    Fisher or K-FAC preconditioner does). Why it is the default: docs/valuation.md, "The default label"
    (payouts that follow a fine-tuning ground truth). ``none`` leaves the config hash as it was before
    the option existed."""

    @property
    def seed(self) -> int:
        return self.projection.seed

    def config_hash(self) -> str:
        return stable_hash(self.summary())

    def needs_train_statistics(self) -> bool:
        """True when the query depends on the labeled train gradients (H, or the pool reference ḡ_pool),
        so scores need every train shard first."""
        return self.preconditioner != "identity" or self.reference != "none"

    def summary(self) -> dict[str, Any]:
        """The JSON form stored on label sets. An option added later (:data:`_OMITTED_AT_LEGACY_VALUE`) is
        left out when it has the value that configs had before it existed, so such a config keeps its hash."""
        d = self.model_dump(mode="json")
        for key in _OMITTED_AT_LEGACY_VALUE:
            if d[key] == ABSENT_MEANS[key]:
                del d[key]
        return d

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> LinFiKConfig:
        """The config a stored :meth:`summary` (a label set's ``config``) describes: an option it leaves
        out has its value from before the option existed (:data:`ABSENT_MEANS`), not today's default."""
        return cls.model_validate({**ABSENT_MEANS, **dict(data)})
