"""One training run, start to finish, without the database or the registry.

labels → seeded split (train / validation / held-out test) → standardise on train →
embed (cached) → fit heads (or fine-tune) → evaluate on the held-out test split, with the two
baselines trained on the same labels → a run folder::

    run/bundle/                the model (see bundle.py)
    run/outcome.json           metrics, lineage, config, split sizes, history
    run/holdout.parquet        sample_id, content_hash, text, label, prediction, spread (test split)
    run/learning_curve.png, run/pred_vs_exact.png

The folder is what the registry step logs; tasks pass its path, never the objects.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marketplace.approx.baselines import predict_target_cosine, predict_tfidf_ridge
from marketplace.approx.bundle import Approximator, ModelBundle, save_bundle
from marketplace.approx.config import ApproxConfig, canonical_hash
from marketplace.approx.data import LabeledData
from marketplace.approx.embedding_store import open_embedding_store
from marketplace.approx.encoder import EncoderRef, TextEncoder, load_encoder
from marketplace.approx.lineage import code_version
from marketplace.approx.metrics import agreement
from marketplace.approx.plots import plot_learning_curve, plot_pred_vs_exact
from marketplace.approx.scaling import fit_scaler
from marketplace.approx.train import fit_finetune, fit_heads, split_indices
from marketplace.errors import ManifestMismatchError, NotFoundError, ValidationError

__all__ = ["TrainingOutcome", "load_outcome", "train_approximator"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingOutcome:
    run_dir: Path
    metrics: dict[str, float]  # approx_*, tfidf_ridge_*, target_cosine_* (held-out test split)
    lineage: dict[str, str]
    config: dict[str, Any]
    config_hash: str
    n_train: int
    n_val: int
    n_test: int
    epochs: int

    @property
    def bundle_dir(self) -> Path:
        return self.run_dir / "bundle"

    @property
    def holdout_path(self) -> Path:
        return self.run_dir / "holdout.parquet"

    @property
    def plot_paths(self) -> list[Path]:
        return [self.run_dir / "learning_curve.png", self.run_dir / "pred_vs_exact.png"]


def _check_labels(data: LabeledData, config: ApproxConfig) -> None:
    if len(data) < config.min_labels:
        raise ValidationError(
            f"label set {data.label_set_id} has {len(data)} labels; training needs at least {config.min_labels} "
            "(label more samples with `marketplace label`)"
        )
    if not data.target_texts:
        raise ValidationError(f"campaign {data.campaign_name!r} has no target samples; recreate the campaign")


def train_approximator(
    data: LabeledData,
    config: ApproxConfig,
    *,
    store_root: str | Path,
    run_dir: str | Path,
    encoder_ref: EncoderRef | None = None,
    device: str = "cpu",
) -> TrainingOutcome:
    """Train, evaluate against the baselines on held-out labels, and write the run folder."""
    _check_labels(data, config)
    out = Path(run_dir)
    if (out / "outcome.json").exists():
        raise ValidationError(f"run folder {out} already holds a training outcome; use a fresh folder")
    out.mkdir(parents=True, exist_ok=True)
    train, val, test = split_indices(data.content_hashes, config)
    scaler = fit_scaler(data.labels[train], config.label_transform)
    z = scaler.transform(data.labels)

    base = load_encoder(encoder_ref, config.embed, device=device)
    store = open_embedding_store(store_root, base.ref, config.embed, base.dim)
    x_all, stats = store.ensure(data.content_hashes, data.texts, base.embed)
    x_target, _ = store.ensure(data.target_hashes, data.target_texts, base.embed)
    log.info("embeddings: %d cached, %d computed", stats.n_hit, stats.n_computed)

    encoder_for_bundle: TextEncoder | None = None
    if config.mode == "frozen":
        fit = fit_heads(x_all[train], z[train], x_all[val], z[val], config)
    else:
        tuned = load_encoder(base.ref, config.embed, device=device)
        texts = data.texts
        fit = fit_finetune(
            tuned, [texts[i] for i in train], z[train], [texts[i] for i in val], z[val], config
        )
        encoder_for_bundle = tuned
    lineage = {**data.lineage, "code_version": code_version(), "encoder_digest": base.ref.digest}
    bundle = ModelBundle(config=config, encoder_ref=base.ref, head_params=fit.head_params, scaler=scaler,
                         lineage=lineage)
    save_bundle(bundle, out / "bundle", encoder=encoder_for_bundle)

    approx = Approximator(bundle, device=device, encoder=encoder_for_bundle)
    if config.mode == "frozen":
        pred = approx.predict_embeddings(x_all[test])
    else:
        pred = approx.predict_texts([data.texts[i] for i in test])
    y_test = data.labels[test]
    fit_idx = np.concatenate([train, val])
    tfidf = predict_tfidf_ridge([data.texts[i] for i in fit_idx], z[fit_idx], [data.texts[i] for i in test])
    cosine = predict_target_cosine(x_all[test], x_target)
    metrics: dict[str, float] = {}
    for prefix, values in (("approx_", pred.score), ("tfidf_ridge_", tfidf), ("target_cosine_", cosine)):
        metrics.update(agreement(values, y_test).as_dict(prefix))
    metrics["approx_mean_spread"] = float(pred.spread.mean())
    log.info(
        "held-out Spearman: approximator %.3f, tfidf+ridge %.3f, target cosine %.3f (n=%d)",
        metrics["approx_spearman"], metrics["tfidf_ridge_spearman"], metrics["target_cosine_spearman"], test.size,
    )

    pd.DataFrame(
        {
            "sample_id": data.sample_ids[test],
            "content_hash": [data.content_hashes[i] for i in test],
            "text": [data.texts[i] for i in test],
            "label": y_test,
            "prediction": pred.score,
            "spread": pred.spread,
        }
    ).to_parquet(out / "holdout.parquet", index=False)
    plot_learning_curve(fit.history, out / "learning_curve.png")
    plot_pred_vs_exact(pred.score, y_test, metrics["approx_spearman"], out / "pred_vs_exact.png")
    outcome = TrainingOutcome(
        run_dir=out,
        metrics=metrics,
        lineage=lineage,
        config=config.model_dump(mode="json"),
        config_hash=config.config_hash(),
        n_train=int(train.size),
        n_val=int(val.size),
        n_test=int(test.size),
        epochs=len(fit.history),
    )
    payload = {k: v for k, v in asdict(outcome).items() if k != "run_dir"}
    payload["history"] = [asdict(h) for h in fit.history]
    payload["best_epochs"] = fit.best_epochs
    (out / "outcome.json").write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")
    return outcome


def load_outcome(run_dir: str | Path) -> TrainingOutcome:
    """Read a run folder written by :func:`train_approximator`."""
    root = Path(run_dir)
    path = root / "outcome.json"
    if not path.is_file():
        raise NotFoundError(f"{root} holds no training outcome (outcome.json); train first")
    raw = json.loads(path.read_text(encoding="utf-8"))
    if canonical_hash(raw["config"]) != raw["config_hash"]:
        raise ManifestMismatchError(f"{path}: the config does not match its hash; the file was edited")
    fields = {k: raw[k] for k in TrainingOutcome.__dataclass_fields__ if k != "run_dir"}
    return TrainingOutcome(run_dir=root, **fields)
