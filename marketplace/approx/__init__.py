"""ALinFiK: a small text model that learns exact LinFiK labels and scores the whole pool.

Read in pipeline order:

- ``config``           frozen, hashed parameters (ApproxConfig, EmbedConfig)
- ``encoder``          offline Hugging Face encoder, mean pooling + L2 (MiniLM by default)
- ``embedding_store``  content-addressed float16 embedding cache shared by all campaigns
- ``heads``, ``train`` the MLP head ensemble; frozen-embedding and fine-tuning training loops
- ``scaling``          label standardisation and its inverse
- ``metrics``, ``baselines``  held-out Spearman/Pearson/Kendall/precision@10%; TF-IDF+ridge, target cosine
- ``data``, ``training``      one training run from a label set to a run folder
- ``bundle``, ``token_factor``  the model on disk and the predictor; the exact length factor of
  token-weighted labels
- ``gate``, ``publish`` promotion gate, registration, SQL lineage (registry behind a Protocol)
- ``registry``, ``registry_pyfunc``  the MLflow adapter (the only MLflow importers; not imported here)
- ``scoring``, ``audit`` incremental sharded scoring and the exact-label audit
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
