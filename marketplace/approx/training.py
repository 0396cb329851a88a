"""One training run, start to finish, without the database or the registry.

labels → seeded split (train / validation / held-out test) → standardise on train →
embed (cached) → fit heads (or fine-tune) → evaluate on the held-out test split, with the two
baselines trained on the same labels → a run folder::

    run/bundle/                the model (see bundle.py)
    run/outcome.json           metrics, lineage, config, split sizes, history
    run/holdout.parquet        sample_id, content_hash, text, prompt_chars, label, prediction, spread (test)
    run/learning_curve.png, run/pred_vs_exact.png

The folder is what the registry step logs; tasks pass its path, never the objects.

Token-weighted label sets (``LinFiKConfig.weighting="token"``): the heads learn the per-token value
u = y / (T(x)/L) and the bundle carries the exact factor T(x)/L (token_factor.py), so every score
and every held-out metric is in the label set's own units, u · T(x)/L. The baselines get the same
factor (they learn u too), a like-for-like comparison; ``approx_per_token_spearman`` records how well
the heads learned u itself. Labels whose factor is 0 (no loss tokens: their label is exactly 0, and so
is their score) are left out of training and evaluation.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marketplace.approx.baselines import predict_target_cosine, predict_tfidf_ridge
from marketplace.approx.bundle import Approximator, ModelBundle, Prediction, save_bundle
from marketplace.approx.config import ApproxConfig, check_config_hash, read_json_manifest
from marketplace.approx.data import LabeledData
from marketplace.approx.embedding_store import open_embedding_store
from marketplace.approx.encoder import EncoderRef, TextEncoder, default_encoder_ref, load_encoder, open_encoder
from marketplace.approx.feature_scaling import apply_feature_scaling, fit_feature_scaling
from marketplace.approx.lineage import code_version
from marketplace.approx.metrics import agreement
from marketplace.approx.plots import plot_learning_curve, plot_pred_vs_exact
from marketplace.approx.scaling import fit_scaler
from marketplace.approx.text_stats import N_TEXT_STATS
from marketplace.approx.token_factor import TokenFactor
from marketplace.approx.train import fit_finetune, fit_heads, fit_ridge, split_indices
from marketplace.errors import ValidationError

__all__ = ["TrainingOutcome", "load_outcome", "new_run_dir", "train_approximator"]

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


def _token_factor(data: LabeledData) -> TokenFactor | None:
    if data.weighting == "sample":
        return None
    if data.weighting != "token" or data.target_model_path is None or data.max_length is None:
        raise ValidationError(
            f"label set {data.label_set_id} has weighting {data.weighting!r} without what it needs; "
            "this code trains on 'sample' labels, or on 'token' labels with their max_length and target model"
        )
    return TokenFactor.from_target_model(data.target_model_path, data.max_length)


def _with_factor(data: LabeledData, factor: TokenFactor | None) -> tuple[LabeledData, np.ndarray, np.ndarray]:
    """(labels with a non-zero factor, their factors, what the heads learn: labels / factors)."""
    if factor is None:
        return data, np.ones(len(data)), data.labels
    w = factor.weights(data.texts, data.prompt_chars)
    keep = np.flatnonzero(w > 0)
    if keep.size < len(data):
        log.info("label set %d: %d labels have no loss tokens (factor 0, label 0); left out",
                 data.label_set_id, len(data) - keep.size)
        prompts = data.prompt_chars
        data = replace(
            data, sample_ids=data.sample_ids[keep], content_hashes=[data.content_hashes[i] for i in keep],
            texts=[data.texts[i] for i in keep], labels=data.labels[keep],
            prompt_chars=None if prompts is None else [prompts[i] for i in keep],
        )
        w = w[keep]
    return data, w, data.labels / w


def new_run_dir(artifacts_dir: str | Path, campaign_id: int) -> Path:
    """A fresh run folder for one training run: ``{artifacts}/approx/runs/campaign-{id}/{random}``."""
    return Path(artifacts_dir) / "approx" / "runs" / f"campaign-{campaign_id}" / uuid.uuid4().hex[:12]


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
    out = Path(run_dir)
    if (out / "outcome.json").exists():
        raise ValidationError(f"run folder {out} already holds a training outcome; use a fresh folder")
    factor = _token_factor(data)
    data, w, learned = _with_factor(data, factor)
    _check_labels(data, config)
    out.mkdir(parents=True, exist_ok=True)
    train, val, test = split_indices(data.content_hashes, config)
    scaler = fit_scaler(learned[train], config.label_transform)
    z = scaler.transform(learned)

    # A static encoder is distilled from ``encoder_ref`` once, into the embedding store's root.
    base = open_encoder(encoder_ref, config.embed, device=device, cache_dir=store_root)
    store = open_embedding_store(store_root, base.ref, config.embed, base.dim)
    x_all, stats = store.ensure(data.content_hashes, data.texts, base.embed)
    x_target, _ = store.ensure(data.target_hashes, data.target_texts, base.embed)
    log.info("embeddings: %d cached, %d computed", stats.n_hit, stats.n_computed)

    encoder_for_bundle: TextEncoder | None = None
    fit_idx = np.concatenate([train, val])
    scaling = fit_feature_scaling(x_all[train], config) if config.mode == "frozen" else None
    x_fit = apply_feature_scaling(x_all, scaling)  # what the heads see (the bundle applies the same)
    if config.mode == "frozen" and config.head == "ridge":
        # The penalty is chosen by leave-one-out error, so the validation rows train too.
        fit = fit_ridge(x_fit[fit_idx], z[fit_idx], config)
    elif config.mode == "frozen":
        fit = fit_heads(x_fit[train], z[train], x_fit[val], z[val], config)
    else:
        tuned = load_encoder(base.ref, config.embed, device=device)
        texts = data.texts
        fit = fit_finetune(
            tuned, [texts[i] for i in train], z[train], [texts[i] for i in val], z[val], config
        )
        encoder_for_bundle = tuned
    lineage = {**data.lineage, "code_version": code_version(), "encoder_digest": base.ref.digest,
               "encoder_kind": config.embed.encoder}
    if config.embed.encoder == "static":  # the transformer the static table was distilled from
        lineage["encoder_source_digest"] = (encoder_ref or default_encoder_ref()).digest
    bundle = ModelBundle(config=config, encoder_ref=base.ref, head_params=fit.head_params, scaler=scaler,
                         lineage=lineage, token_factor=factor, feature_scaling=scaling)
    save_bundle(bundle, out / "bundle", encoder=encoder_for_bundle)

    approx = Approximator(bundle, device=device, encoder=encoder_for_bundle or base)
    w_test = w[test] if factor is not None else None
    prompts_test = None if data.prompt_chars is None else [data.prompt_chars[i] for i in test]
    if config.mode == "frozen":
        pred = approx.predict_embeddings(x_all[test], w_test)
    else:
        pred = approx.predict_texts([data.texts[i] for i in test], prompts_test)
    tfidf = predict_tfidf_ridge([data.texts[i] for i in fit_idx], z[fit_idx], [data.texts[i] for i in test])
    width = x_all.shape[1] - (N_TEXT_STATS if config.embed.features == "stacked" else 0)  # embeddings only
    cosine = predict_target_cosine(x_all[test, :width], x_target[:, :width])
    if w_test is not None:
        tfidf, cosine = scaler.inverse(tfidf) * w_test, cosine * w_test
    metrics = _held_out_metrics(pred, tfidf, cosine, data.labels[test], w_test, learned[test])
    _write_holdout(out / "holdout.parquet", data, test, prompts_test, pred)
    plot_learning_curve(fit.history, out / "learning_curve.png")
    plot_pred_vs_exact(pred.score, data.labels[test], metrics["approx_spearman"], out / "pred_vs_exact.png")
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


def _held_out_metrics(pred: Prediction, tfidf: np.ndarray, cosine: np.ndarray, y_test: np.ndarray,
                      w_test: np.ndarray | None, learned_test: np.ndarray) -> dict[str, float]:
    """Agreement of the approximator and of both baselines with the held-out labels (all (n_test,), in
    the labels' units), the heads' mean spread, and for token-weighted labels how well the heads
    learned the per-token value itself."""
    metrics: dict[str, float] = {}
    for prefix, values in (("approx_", pred.score), ("tfidf_ridge_", tfidf), ("target_cosine_", cosine)):
        metrics.update(agreement(values, y_test).as_dict(prefix))
    metrics["approx_mean_spread"] = float(pred.spread.mean())
    if w_test is not None:
        metrics["approx_per_token_spearman"] = agreement(pred.score / w_test, learned_test).spearman
    log.info(
        "held-out Spearman: approximator %.3f, tfidf+ridge %.3f, target cosine %.3f (n=%d)",
        metrics["approx_spearman"], metrics["tfidf_ridge_spearman"], metrics["target_cosine_spearman"], y_test.size,
    )
    return metrics


def _write_holdout(path: Path, data: LabeledData, test: np.ndarray, prompts_test: list[int | None] | None,
                   pred: Prediction) -> None:
    """The held-out rows with their label and prediction (what the gate re-evaluates a champion on)."""
    pd.DataFrame(
        {
            "sample_id": data.sample_ids[test],
            "content_hash": [data.content_hashes[i] for i in test],
            "text": [data.texts[i] for i in test],
            "prompt_chars": pd.array(prompts_test if prompts_test is not None else [None] * test.size,
                                     dtype="Int64"),
            "label": data.labels[test],
            "prediction": pred.score,
            "spread": pred.spread,
        }
    ).to_parquet(path, index=False)


def load_outcome(run_dir: str | Path) -> TrainingOutcome:
    """Read a run folder written by :func:`train_approximator`."""
    root = Path(run_dir)
    raw = read_json_manifest(root / "outcome.json", missing=f"{root} holds no training outcome (outcome.json); "
                             "train first")
    check_config_hash(raw, str(root / "outcome.json"))
    fields = {k: raw[k] for k in TrainingOutcome.__dataclass_fields__ if k != "run_dir"}
    return TrainingOutcome(run_dir=root, **fields)
