"""Token-weighted approximators: the heads learn the per-token value u = y / (T(x)/L) and every score
is u · T(x)/L with the exact factor. Checked: the factor is the labeler's own; it survives the bundle
round trip and refuses an edited tokenizer; training learns u (same heads as training on u itself);
held-out metrics, the gate's re-evaluation, scoring (SQLite and PostgreSQL) and the MLflow pyfunc all
apply the factor; a sample whose loss has no tokens is left out of training and scores 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from marketplace.approx.bundle import Approximator, load_bundle
from marketplace.approx.config import ApproxConfig, EmbedConfig
from marketplace.approx.data import LabeledData, load_labeled_data
from marketplace.approx.embedding_store import open_embedding_store
from marketplace.approx.encoder import EncoderRef, digest_model_dir
from marketplace.approx.gate import evaluate_bundle_on_holdout
from marketplace.approx.scoring import compute_shard, load_shard, start_score_run, write_shard
from marketplace.approx.token_factor import TokenFactor, count_key, open_count_store
from marketplace.approx.training import TrainingOutcome, train_approximator
from marketplace.db import ApproximatorVersion, Label, LabelSet, Sample, Score
from marketplace.errors import ManifestMismatchError, NotFoundError, ValidationError
from marketplace.valuation.scoring import token_weights
from marketplace.valuation.target_model import load_target_model
from marketplace.valuation.tokenization import token_length_factor
from tests.support.approx import build_tiny_encoder, make_labeled_campaign, proxy_label
from tests.support.models import build_tiny_model

torch.set_num_threads(1)

MAX_LENGTH = 48  # below the tiny model's context (64): truncation happens at L
N_SAMPLES, N_LABELED = 90, 70
CFG = ApproxConfig(seed=0, n_heads=3, hidden_dim=32, max_epochs=12, patience=4,
                   embed=EmbedConfig(max_length=64, batch_size=32))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def encoder_ref(tmp_path_factory: pytest.TempPathFactory) -> EncoderRef:
    path = build_tiny_encoder(tmp_path_factory.mktemp("tf-encoder") / "encoder")
    return EncoderRef(source="path", path=str(path), digest=digest_model_dir(path))


def _loss_tokens_by_hand(tokenizer: Any, text: str, prompt_chars: int | None, truncation: int) -> int:
    """T(x) from the loss convention, counted directly: the tokens after the first (nothing predicts
    it) that start at or after the prompt's end, truncated at ``truncation`` tokens."""
    enc = tokenizer(text, truncation=True, max_length=truncation, return_offsets_mapping=True)
    return sum(start >= (prompt_chars or 0) for start, _ in enc["offset_mapping"][1:])


def test_factor_is_the_labelers_and_survives_the_bundle_round_trip(model_dir: Path, tmp_path: Path) -> None:
    texts = ["def f(x):\n    return x", "word " * 200, "Q: what is a list?\nA: a mutable sequence.", "x"]
    prompts = [None, None, 19, None]
    factor = TokenFactor.from_target_model(model_dir, MAX_LENGTH)
    got = factor.weights(texts, prompts)
    model = load_target_model(model_dir)
    by_hand = [_loss_tokens_by_hand(model.tokenizer, t, p, MAX_LENGTH) / MAX_LENGTH
               for t, p in zip(texts, prompts, strict=True)]
    np.testing.assert_array_equal(got, by_hand)
    np.testing.assert_array_equal(got, token_length_factor(model.tokenizer, texts, prompts, max_length=MAX_LENGTH,
                                                           context_length=model.context_length))
    # The labeler multiplies its float32 scores by the same factor, rounded to float32 once.
    labeler = token_weights(model, texts, prompts, MAX_LENGTH)
    assert labeler.dtype == torch.float32
    np.testing.assert_array_equal(labeler.numpy(), got.astype(np.float32))
    short = token_length_factor(model.tokenizer, texts[1:2], None, max_length=200, context_length=MAX_LENGTH)
    assert short[0] == pytest.approx((MAX_LENGTH - 1) / 200)  # truncated at the context, normalised by L
    assert got[1] == pytest.approx((MAX_LENGTH - 1) / MAX_LENGTH)  # truncated at L, the first token never counts
    assert got[3] == 0.0 < got[2] < factor.weights(texts[2:3])[0]  # the prompt is masked
    assert factor.weights([]).shape == (0,)

    meta = factor.save(tmp_path / "tf")
    again = TokenFactor.load(tmp_path / "tf", meta)
    np.testing.assert_array_equal(again.weights(texts, prompts), got)
    assert (again.max_length, again.truncation) == (MAX_LENGTH, MAX_LENGTH)

    vocab = tmp_path / "tf" / "tokenizer.json"
    vocab.write_text(vocab.read_text(encoding="utf-8") + " ", encoding="utf-8")  # one byte more
    with pytest.raises(ManifestMismatchError, match="tokenizer files do not match"):
        TokenFactor.load(tmp_path / "tf", meta)
    with pytest.raises(NotFoundError, match="token-weighted labels need its tokenizer"):
        TokenFactor.from_target_model(tmp_path / "gone", MAX_LENGTH)
    with pytest.raises(ValidationError, match="2 texts but 1 prompt"):
        factor.weights(texts[:2], [None])


def _token_label_set(session: Session, model_dir: Path) -> tuple[int, int, dict[int, float]]:
    """A campaign whose label set is token-weighted: label = proxy(x) · T(x)/L. Every 5th labeled sample
    is a prompt/response pair and one sample is all prompt (T = 0, label 0). Returns (campaign id,
    the all-prompt sample id, the per-token values u by sample id)."""
    fx = make_labeled_campaign(session, n_samples=N_SAMPLES, n_labeled=N_LABELED)
    factor = TokenFactor.from_target_model(model_dir, MAX_LENGTH)
    ids = fx.labeled_ids
    prompts: dict[int, int | None] = {sid: (20 if k % 5 == 0 else None)
                                      for k, sid in enumerate(ids)}
    all_prompt = ids[7]
    prompts[all_prompt] = len(fx.texts[all_prompt])
    for sid, pc in prompts.items():
        if pc is not None:
            session.execute(update(Sample).where(Sample.id == sid).values(prompt_chars=pc))
    w = factor.weights([fx.texts[s] for s in ids], [prompts[s] for s in ids])
    u = {sid: proxy_label(fx.texts[sid]) for sid in ids}
    for sid, wi in zip(ids, w, strict=True):
        session.execute(update(Label).where(Label.label_set_id == fx.label_set_id, Label.sample_id == sid)
                        .values(score=u[sid] * float(wi)))
    session.execute(update(LabelSet).where(LabelSet.id == fx.label_set_id).values(
        config={"weighting": "token", "max_length": MAX_LENGTH},
        lineage={"checkpoints": [{"path": str(model_dir), "digest": "m" * 64, "eta": 1.0}]},
    ))
    return fx.campaign_id, all_prompt, u


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, model_dir: Path,
            encoder_ref: EncoderRef) -> tuple[LabeledData, TrainingOutcome, Path]:
    tmp = tmp_path_factory.mktemp("tf-train")
    from marketplace.db import create_db_engine, make_session_factory
    from marketplace.db.migrate import upgrade

    engine = create_db_engine(f"sqlite:///{tmp / 'labels.db'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as s, s.begin():
        cid, _, _ = _token_label_set(s, model_dir)
    with factory() as s:
        data = load_labeled_data(s, cid)
    engine.dispose()
    outcome = train_approximator(data, CFG, store_root=tmp / "emb", run_dir=tmp / "run", encoder_ref=encoder_ref)
    return data, outcome, tmp / "emb"


def test_training_learns_the_per_token_value(trained: tuple[LabeledData, TrainingOutcome, Path], model_dir: Path,
                                             encoder_ref: EncoderRef, tmp_path: Path) -> None:
    data, outcome, store_root = trained
    assert data.weighting == "token" and data.max_length == MAX_LENGTH and data.prompt_chars is not None
    assert outcome.lineage["label_weighting"] == "token"
    factor = TokenFactor.from_target_model(model_dir, MAX_LENGTH)
    w = factor.weights(data.texts, data.prompt_chars)
    keep = np.flatnonzero(w > 0)
    assert keep.size == len(data) - 1 and outcome.n_train + outcome.n_val + outcome.n_test == keep.size

    # The same heads as training on u itself (the per-sample labels the token labels came from).
    plain = LabeledData(
        data.campaign_id, data.campaign_name, data.label_set_id, data.sample_ids[keep],
        [data.content_hashes[i] for i in keep], [data.texts[i] for i in keep], data.labels[keep] / w[keep],
        data.target_hashes, data.target_texts, data.lineage,
    )
    reference = train_approximator(plain, CFG, store_root=store_root, run_dir=tmp_path / "plain",
                                   encoder_ref=encoder_ref)
    weighted, unweighted = Approximator(load_bundle(outcome.bundle_dir)), Approximator(
        load_bundle(reference.bundle_dir))
    assert weighted.token_factor is not None and unweighted.token_factor is None
    texts, prompts = plain.texts[:20], [data.prompt_chars[i] for i in keep[:20]]
    got = weighted.predict_texts(texts, prompts)
    per_token = unweighted.predict_texts(texts)
    wt = factor.weights(texts, prompts)
    np.testing.assert_allclose(got.score, per_token.score * wt, rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(got.spread, per_token.spread * wt, rtol=1e-4, atol=1e-12)
    assert outcome.metrics["approx_per_token_spearman"] == pytest.approx(reference.metrics["approx_spearman"],
                                                                         abs=1e-6)

    # Held-out metrics are in the label set's units, and the gate's re-evaluation applies the factor too.
    holdout = pd.read_parquet(outcome.holdout_path)
    assert holdout["prompt_chars"].notna().any()
    agreement = evaluate_bundle_on_holdout(outcome.bundle_dir, holdout, store_root=store_root)
    assert agreement.spearman == pytest.approx(outcome.metrics["approx_spearman"], abs=1e-9)
    x = open_embedding_store(store_root, weighted.bundle.encoder_ref, CFG.embed, weighted.bundle.dim).ensure(
        holdout["content_hash"].tolist(), holdout["text"].tolist(), weighted.embed)[0]
    with pytest.raises(ValidationError, match="pass each text's factor"):
        weighted.predict_embeddings(x)
    with pytest.raises(ValidationError, match="takes no token factor"):
        unweighted.predict_embeddings(x, np.ones(len(x)))
    with pytest.raises(ValidationError, match="token factors for"):
        weighted.predict_embeddings(x, np.ones(len(x) + 1))


def _version(s: Session, cid: int, outcome: TrainingOutcome, number: str) -> ApproximatorVersion:
    label_set_id = s.scalar(select(LabelSet.id).where(LabelSet.campaign_id == cid))
    version = ApproximatorVersion(
        campaign_id=cid, label_set_id=label_set_id, model_name="alinfik-docs", version=number, mlflow_run_id="r",
        model_uri=f"models:/alinfik-docs/{number}", config_hash=outcome.config_hash, encoder_digest="e" * 64,
        metrics={}, lineage={},
    )
    s.add(version)
    s.flush()
    return version


def _stored(factory: sessionmaker[Session], version_id: int) -> dict[int, float]:
    with factory() as s:
        return {int(r.sample_id): float(r.score) for r in s.execute(
            select(Score.sample_id, Score.score).where(Score.approximator_version_id == version_id))}


def test_scoring_multiplies_by_the_exact_factor(session_factory: sessionmaker[Session], model_dir: Path,
                                                trained: tuple[LabeledData, TrainingOutcome, Path],
                                                tmp_path: Path) -> None:
    _, outcome, _ = trained
    with session_factory() as s, s.begin():
        cid, all_prompt, _ = _token_label_set(s, model_dir)
        v1 = _version(s, cid, outcome, "1")
        plan = start_score_run(s, cid, v1, resolved_from="test", shard_size=40)
    approx = Approximator(load_bundle(outcome.bundle_dir))
    b = approx.bundle
    assert b.token_factor is not None
    store = open_embedding_store(tmp_path / "emb", b.encoder_ref, b.config.embed, b.dim)
    with session_factory() as s:  # every embedding cached: a plain load brings no text
        pool = s.execute(select(Sample.content_hash, Sample.text)).all()
    store.ensure([r.content_hash for r in pool], [r.text for r in pool], approx.embed)
    lo, hi = plan.shards[0]
    with session_factory() as s:
        partial = load_shard(s, plan.score_run_id, lo, hi, is_cached=store.contains)
    assert partial.texts == {}
    with pytest.raises(ValidationError, match="needs every text"):
        compute_shard(partial, approx, store)
    for lo, hi in plan.shards:  # without a count store: every text, every count computed
        with session_factory() as s:
            shard = load_shard(s, plan.score_run_id, lo, hi, is_cached=store.contains, all_texts=True)
        assert len(shard.texts) == shard.sample_ids.size == len(shard.prompt_chars)
        with session_factory() as s, s.begin():
            write_shard(s, compute_shard(shard, approx, store))
    with session_factory() as s:
        rows = s.execute(select(Score.sample_id, Score.score, Sample.text, Sample.prompt_chars)
                         .join(Sample, Sample.id == Score.sample_id).order_by(Score.sample_id)).all()
    assert len(rows) == plan.n_todo
    want = approx.predict_texts([r.text for r in rows], [r.prompt_chars for r in rows]).score
    # scoring reads the embeddings back from the store in float16 (relative rounding up to 2^-11 per
    # element) where predict_texts embeds in float32; the raw text statistics of stacked features (logs up to
    # ~10, standardised after) carry that rounding into the score: they agree to ~1e-3, not to the last bit
    np.testing.assert_allclose([r.score for r in rows], want, rtol=2e-3, atol=1e-12)
    assert {r.sample_id: r.score for r in rows}[all_prompt] == 0.0
    assert sum(r.prompt_chars is not None for r in rows) > 5

    # With a count store: the first version counts the misses and caches them; a second version's
    # shards then load no text at all (embeddings and counts cached) and score the same.
    counts = open_count_store(tmp_path / "emb", b.token_factor)
    for number in ("2", "3"):
        with session_factory() as s, s.begin():
            version = _version(s, cid, outcome, number)
            run = start_score_run(s, cid, version, resolved_from="test", shard_size=40)
        loaded = 0
        for lo, hi in run.shards:
            with session_factory() as s:
                shard = load_shard(s, run.score_run_id, lo, hi, is_cached=store.contains,
                                   counts_cached=counts.contains)
            loaded += len(shard.texts)
            with session_factory() as s, s.begin():
                write_shard(s, compute_shard(shard, approx, store, counts))
        # (v2: a duplicate whose first owner was counted in an earlier shard is a cache hit already)
        assert (loaded > run.n_todo - 10) if number == "2" else (loaded == 0)
        assert _stored(session_factory, version.id) == pytest.approx(_stored(session_factory, v1.id), rel=1e-12)
    # The same text with another prompt length is another count.
    assert count_key("a" * 64, None) == "a" * 64 != count_key("a" * 64, 5) != count_key("a" * 64, 6)


def test_registered_model_scores_with_prompt_lengths(trained: tuple[LabeledData, TrainingOutcome, Path],
                                                     tmp_path: Path) -> None:
    """Through MLflow: register, load by alias, predict with and without the optional prompt_chars."""
    from marketplace.approx.publish import publish_outcome
    from marketplace.approx.registry import MlflowRegistry

    _, outcome, store_root = trained
    registry = MlflowRegistry(f"sqlite:///{tmp_path / 'tracking.db'}", (tmp_path / "mlruns").as_uri())
    pub = publish_outcome(outcome, registry, "alinfik-tokens", store_root=store_root, download_dir=tmp_path / "dl",
                          floor=-1.0)
    assert pub.promoted
    model = registry.load_pyfunc("models:/alinfik-tokens@champion")
    texts = ["Q: what is a dict?\nA: a mapping from keys to values.", "Exceptions are raised by raise."]
    got = model.predict(pd.DataFrame({"text": texts, "prompt_chars": [18, 0]}))
    want = Approximator(load_bundle(outcome.bundle_dir)).predict_texts(texts, [18, 0])
    np.testing.assert_allclose(got["score"].to_numpy(), want.score, rtol=1e-5, atol=1e-12)
    without = model.predict(pd.DataFrame({"text": texts}))
    np.testing.assert_allclose(without["score"].to_numpy()[1], want.score[1], rtol=1e-5, atol=1e-12)
    assert without["score"].iloc[0] != pytest.approx(got["score"].iloc[0])  # the prompt's tokens no longer count
