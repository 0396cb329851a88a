"""A training run from a label set in the database (SQLite and PostgreSQL): deterministic for a
seed, embeddings cached and reused, held-out metrics and baselines consistent with the written
predictions, bundle round trip; and with the real MiniLM, that the approximator actually learns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker

from marketplace.approx.bundle import Approximator, load_bundle
from marketplace.approx.config import ApproxConfig, EmbedConfig
from marketplace.approx.data import load_labeled_data
from marketplace.approx.encoder import EncoderRef, digest_model_dir
from marketplace.approx.metrics import agreement
from marketplace.approx.training import load_outcome, train_approximator
from marketplace.errors import NotFoundError, ValidationError
from tests.support.approx import build_tiny_encoder, make_labeled_campaign

torch.set_num_threads(1)

FAST = ApproxConfig(seed=0, n_heads=3, hidden_dim=32, max_epochs=25, patience=8, min_labels=20,
                    embed=EmbedConfig(max_length=64, batch_size=32))


@pytest.fixture(scope="module")
def tiny_ref(tmp_path_factory: pytest.TempPathFactory) -> EncoderRef:
    path = build_tiny_encoder(tmp_path_factory.mktemp("tiny-bert-train"))
    return EncoderRef(source="path", path=str(path), digest=digest_model_dir(path))


def test_training_is_deterministic_and_cached(
    session_factory: sessionmaker[Session], tmp_path: Path, tiny_ref: EncoderRef
) -> None:
    with session_factory() as s, s.begin():
        fx = make_labeled_campaign(s, n_samples=120, n_labeled=100)
    with session_factory() as s, s.begin():
        data = load_labeled_data(s, fx.campaign_id)
    assert len(data) == 100 and list(data.sample_ids) == sorted(fx.labeled_ids)
    assert data.lineage["label_set_id"] == str(fx.label_set_id)
    assert data.lineage["projection_config_hash"] == "p" * 64

    store = tmp_path / "emb"
    a = train_approximator(data, FAST, store_root=store, run_dir=tmp_path / "a", encoder_ref=tiny_ref)
    shards_after_first = sorted(p.name for p in store.rglob("shard-*.safetensors"))
    b = train_approximator(data, FAST, store_root=store, run_dir=tmp_path / "b", encoder_ref=tiny_ref)
    # The second run found every embedding in the cache: no new shard.
    assert sorted(p.name for p in store.rglob("shard-*.safetensors")) == shards_after_first
    assert a.metrics == b.metrics
    pa, pb = load_bundle(a.bundle_dir), load_bundle(b.bundle_dir)
    for key in pa.head_params:
        np.testing.assert_array_equal(pa.head_params[key], pb.head_params[key])
    assert a.n_train + a.n_val + a.n_test == 100 and a.n_val == 10 and 8 <= a.n_test <= 35

    # The logged metrics are the metrics of the written held-out predictions.
    holdout = pd.read_parquet(a.holdout_path)
    assert len(holdout) == a.n_test and set(holdout["sample_id"]) <= set(fx.labeled_ids)
    recomputed = agreement(holdout["prediction"].to_numpy(), holdout["label"].to_numpy())
    assert a.metrics["approx_spearman"] == pytest.approx(recomputed.spearman)
    assert {"tfidf_ridge_spearman", "target_cosine_spearman", "approx_precision_at_10"} <= set(a.metrics)
    # The bundle predicts the same from text as it did from cached embeddings during evaluation.
    from_text = Approximator(pa).predict_texts(holdout["text"].tolist())
    np.testing.assert_allclose(from_text.score, holdout["prediction"].to_numpy(), rtol=2e-3, atol=1e-6)
    assert all(p.is_file() for p in a.plot_paths)
    assert load_outcome(a.run_dir).metrics == a.metrics
    assert json.loads((a.run_dir / "outcome.json").read_text())["history"]

    other_seed = train_approximator(data, FAST.model_copy(update={"seed": 1}), store_root=store,
                                    run_dir=tmp_path / "c", encoder_ref=tiny_ref)
    assert set(pa.head_params) == {"w", "b"} and pa.feature_scaling is not None  # the defaults: ridge, stacked
    assert not np.array_equal(load_bundle(other_seed.bundle_dir).head_params["w"], pa.head_params["w"])


def test_training_refuses_bad_inputs(sqlite_engine, tmp_path: Path, tiny_ref: EncoderRef) -> None:  # type: ignore[no-untyped-def]
    from marketplace.db import make_session_factory

    factory = make_session_factory(sqlite_engine)
    with factory() as s, s.begin():
        fx = make_labeled_campaign(s, n_samples=30, n_labeled=10)
    with factory() as s, s.begin():
        data = load_labeled_data(s, fx.campaign_id)
        with pytest.raises(NotFoundError):
            load_labeled_data(s, fx.campaign_id, label_set_id=999)
    with pytest.raises(ValidationError, match="at least 20"):
        train_approximator(data, FAST, store_root=tmp_path / "e", run_dir=tmp_path / "r", encoder_ref=tiny_ref)


def test_minilm_approximator_learns_the_label_function(sqlite_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Real encoder, real text, a known label function: the held-out ranking is far from random."""
    from marketplace.db import make_session_factory

    factory = make_session_factory(sqlite_engine)
    with factory() as s, s.begin():
        fx = make_labeled_campaign(s, n_samples=420, n_labeled=400)
    with factory() as s, s.begin():
        data = load_labeled_data(s, fx.campaign_id)
    cfg = ApproxConfig(seed=0, embed=EmbedConfig(max_length=128, batch_size=32))
    out = train_approximator(data, cfg, store_root=tmp_path / "emb", run_dir=tmp_path / "run")
    assert out.metrics["approx_spearman"] > 0.4, out.metrics
    assert out.lineage["encoder_digest"] == load_bundle(out.bundle_dir).encoder_ref.digest
