"""ALinFiK: a small text model that learns exact LinFiK labels and scores the whole pool.

Read in pipeline order:

- ``config``           frozen, hashed parameters (ApproxConfig, EmbedConfig)
- ``encoder``          the encoder interface (open_encoder) and the offline Hugging Face encoder, mean
  pooling + L2 (MiniLM by default); ``static_encoder`` (a word-piece table distilled from it) and
  ``hashed_encoder`` (hashed word-piece n-grams), both on ``token_bags`` (batched tokenisation)
- ``embedding_store``  content-addressed float16 embedding cache shared by all campaigns
- ``heads``, ``train`` the MLP head ensemble; frozen-embedding and fine-tuning training loops
- ``scaling``          label standardisation and its inverse
- ``metrics``, ``baselines``  held-out Spearman/Pearson/Kendall/precision@10%; TF-IDF+ridge, target cosine
- ``data``, ``training``      one training run from a label set to a run folder
- ``bundle``, ``token_factor``  the model on disk and the predictor; the exact length factor of
  token-weighted labels
- ``gate``, ``publish`` promotion gate, registration, SQL lineage (registry behind a Protocol)
- ``registry``, ``registry_pyfunc``  the MLflow adapter (the only MLflow importers; not imported here)
- ``scoring``, ``audit`` incremental sharded scoring and the exact-label audit; ``cascade`` (a fast model for
  all, a slow one re-scoring the top and the samples near the pricing threshold)
- ``export``, ``active``, ``history``  exports, active labeling, registry lookups
"""

from marketplace.approx.bundle import Approximator, ModelBundle, load_bundle, save_bundle
from marketplace.approx.config import ApproxConfig, EmbedConfig
from marketplace.approx.gate import DEFAULT_FLOOR, GateDecision, decide_promotion
from marketplace.approx.metrics import Agreement, agreement
from marketplace.approx.training import TrainingOutcome, load_outcome, train_approximator

__all__ = [
    "DEFAULT_FLOOR",
    "Agreement",
    "ApproxConfig",
    "Approximator",
    "EmbedConfig",
    "GateDecision",
    "ModelBundle",
    "TrainingOutcome",
    "agreement",
    "decide_promotion",
    "load_bundle",
    "load_outcome",
    "save_bundle",
    "train_approximator",
]
