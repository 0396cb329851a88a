"""Valuation: LinFiK labels from LoGra-projected per-sample gradients (DESIGN.md §4).

Stages, one module each: ``target_model`` (load + digest a checkpoint folder), ``projection`` and
``logra`` (projected per-sample gradients), ``store`` (sharded gradients on disk), ``preconditioner``
and ``linfik`` (queries and scores), ``runs`` / ``gradients`` / ``labeling`` (the label pipeline),
``export``; ``demo_model`` builds the demo target model; ``exact`` holds the slow oracles.
"""

from marketplace.valuation.config import CheckpointSpec, LinFiKConfig, ProjectionConfig
from marketplace.valuation.demo_model import DemoModelConfig, build_demo_model
from marketplace.valuation.export import export_labels
from marketplace.valuation.labeling import (
    LabelRunSummary,
    create_label_set,
    describe_label_set,
    label_sample_ids,
    score_label_run,
)
from marketplace.valuation.target_model import TargetModel, digest_model_dir, load_target_model

__all__ = [
    "CheckpointSpec",
    "DemoModelConfig",
    "LabelRunSummary",
    "LinFiKConfig",
    "ProjectionConfig",
    "TargetModel",
    "build_demo_model",
    "create_label_set",
    "describe_label_set",
    "digest_model_dir",
    "export_labels",
    "label_sample_ids",
    "load_target_model",
    "score_label_run",
]
