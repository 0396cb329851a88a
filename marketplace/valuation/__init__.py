"""Valuation: LinFiK labels from LoGra-projected per-sample gradients (docs/valuation.md).

Stages, one module each: ``target_model`` (load + digest a checkpoint folder), ``tokenization`` (token
batches, the loss convention and the token-length factor T(x)/L), ``projection`` and ``logra``
(projected per-sample gradients), ``store`` (sharded gradients on disk), ``preconditioner`` and
``linfik`` (queries and scores). The label pipeline: ``runs`` (plan), ``gradients`` (shards),
``scoring`` (queries, scores, Label rows), ``labeling`` (all steps in one process), ``summary`` (a
label set's record), ``queries`` (queries on disk, reused), ``exact_labels`` (exact LinFiK of any
sample, for the audit); ``export`` writes labels out. ``demo_model`` builds the demo target model from
general text (marketplace.corpus); ``exact`` holds the slow oracles and ``quality`` compares LoGra with them.
"""

from marketplace.valuation.config import CheckpointSpec, LinFiKConfig, ProjectionConfig
from marketplace.valuation.demo_model import DemoModelConfig, build_demo_model
from marketplace.valuation.exact_labels import label_sample_ids
from marketplace.valuation.export import export_labels
from marketplace.valuation.labeling import create_label_set
from marketplace.valuation.scoring import score_label_run
from marketplace.valuation.summary import LabelRunSummary, describe_label_set, mark_label_set_failed
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
    "mark_label_set_failed",
    "score_label_run",
]
