"""The fast encoders against slow, obvious ones: static pooling and hashed n-grams against per-text
loops, distillation deterministic and cached by digest, the token factor's fast counts against the
labeler's function, the cascade's choice against its rule, and a model refusing any encoder but its own."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker

from marketplace.approx.bundle import Approximator, load_bundle
from marketplace.approx.cascade import CascadeRule, combine_cascade, pick_for_rescoring
from marketplace.approx.config import ApproxConfig, EmbedConfig
from marketplace.approx.data import LabeledData, load_labeled_data
from marketplace.approx.embedding_store import open_embedding_store
from marketplace.approx.encoder import EncoderRef, digest_model_dir, load_encoder, open_encoder
from marketplace.approx.hashed_encoder import HashedEncoder, _splitmix64
from marketplace.approx.scoring import compute_shard, load_shard, open_scorer, start_score_run
from marketplace.approx.static_encoder import (
    MANIFEST,
    VECTORS,
    StaticEncoder,
    _token_states,
    distill_static_vectors,
    ensure_static_encoder,
    open_static_encoder,
)
from marketplace.approx.token_factor import TokenFactor
from marketplace.approx.training import train_approximator
from marketplace.db import ApproximatorVersion
from marketplace.errors import ConfigError, ManifestMismatchError, ValidationError
from marketplace.valuation.target_model import load_target_model
from tests.support.approx import build_tiny_encoder, make_labeled_campaign, pydoc_paragraphs
from tests.support.models import build_tiny_model

torch.set_num_threads(1)

STATIC = EmbedConfig(encoder="static", dim=16, layer=2, max_length=64)
HASHED = EmbedConfig(encoder="hashed", dim=64, max_length=64)
TEXTS = [*pydoc_paragraphs()[:9], "", "   ", "naïve café — ünïcödé", "word " * 300]


def _word_pieces(folder: str, text: str) -> list[int]:
    """A text's word pieces by the slow route: the tokenizer file read afresh, one text, no truncation."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()  # the saved file pads to a fixed length
    return list(tok.encode(text, add_special_tokens=False).ids)


@pytest.fixture(scope="module")
def tiny_ref(tmp_path_factory: pytest.TempPathFactory) -> EncoderRef:
    path = build_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny")
    return EncoderRef(source="path", path=str(path), digest=digest_model_dir(path))


@pytest.fixture(scope="module")
def static_ref(tiny_ref: EncoderRef, tmp_path_factory: pytest.TempPathFactory) -> EncoderRef:
    return ensure_static_encoder(tiny_ref, STATIC, tmp_path_factory.mktemp("static-cache"))


# --- the static encoder -------------------------------------------------------------------------------------


def test_static_pooling_matches_a_loop_over_tokens(static_ref: EncoderRef) -> None:
    enc = open_static_encoder(static_ref, STATIC, cache_dir=None)
    fast = enc.embed(TEXTS)
    table = enc.table.numpy()
    for i, text in enumerate(TEXTS):
        ids = _word_pieces(static_ref.path, text)[:64]
        summed = np.zeros(enc.dim)
        for t in ids:
            summed += table[t]
        norm = np.linalg.norm(summed)
        np.testing.assert_allclose(fast[i], summed / norm if norm else summed, atol=1e-5)
    assert np.all(fast[9] == 0) and np.all(fast[10] == 0)  # no word pieces: zeros
    assert len(_word_pieces(static_ref.path, TEXTS[-1])) > 64  # truncation was exercised
    np.testing.assert_allclose(np.linalg.norm(fast[:9], axis=1), 1.0, atol=1e-5)
    assert enc.embed([]).shape == (0, 16)


def test_batched_token_states_match_one_token_at_a_time(tiny_ref: EncoderRef) -> None:
    source = load_encoder(tiny_ref, EmbedConfig(layer=2, features="pooled"))
    states = _token_states(source)
    tok = source.tokenizer
    for t in (0, 1037, 2088, len(tok) - 1):
        ids = torch.tensor([[tok.cls_token_id, t, tok.sep_token_id]])
        with torch.no_grad():
            hidden = source.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        np.testing.assert_allclose(states[t], hidden[0, 1].double().numpy(), atol=1e-5)


def test_distillation_is_deterministic_and_cached_by_digest(tiny_ref: EncoderRef, static_ref: EncoderRef,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = load_encoder(tiny_ref, EmbedConfig(layer=2, features="pooled"))
    a, b = distill_static_vectors(source, 16), distill_static_vectors(source, 16)
    assert a.dtype == np.float16 and a.shape == (len(source.tokenizer), 16)
    np.testing.assert_array_equal(a, b)
    # A second cache folder distils to the same bytes: the same digest.
    other = ensure_static_encoder(tiny_ref, STATIC, tmp_path / "other")
    assert other.digest == static_ref.digest and other.path != static_ref.path
    manifest = json.loads((Path(static_ref.path) / MANIFEST).read_text())
    assert manifest["source_digest"] == tiny_ref.digest and (manifest["layer"], manifest["dim"]) == (2, 16)
    # Cached: a second call distils nothing.
    def refuse(*_args: object) -> np.ndarray:
        raise AssertionError("distilled again")

    monkeypatch.setattr("marketplace.approx.static_encoder.distill_static_vectors", refuse)
    assert ensure_static_encoder(tiny_ref, STATIC, tmp_path / "other") == other
    # Other parameters are another folder; a damaged table is refused with the way out.
    with pytest.raises(AssertionError, match="distilled again"):
        ensure_static_encoder(tiny_ref, STATIC.model_copy(update={"dim": 8}), tmp_path / "other")
    vectors = Path(other.path) / VECTORS
    vectors.write_bytes(vectors.read_bytes()[:-2] + b"\0\0")
    with pytest.raises(ManifestMismatchError, match="delete the folder"):
        open_static_encoder(EncoderRef.from_path(other.path), STATIC, cache_dir=None)
    with pytest.raises(ConfigError, match="cache folder"):
        open_encoder(tiny_ref, STATIC)  # distilling needs somewhere to keep the result
    with pytest.raises(ConfigError, match="hidden size"):
        distill_static_vectors(source, 64)


# --- the hashed encoder ---------------------------------------------------------------------------------------


def _splitmix_scalar(x: int) -> int:
    mask = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_hashed_features_match_a_loop_over_ngrams(tiny_ref: EncoderRef) -> None:
    enc = HashedEncoder.from_ref(tiny_ref, HASHED)
    fast = enc.embed(TEXTS)
    for i, text in enumerate(TEXTS):
        ids = _word_pieces(tiny_ref.path, text)[:64]
        keys = list(ids) + [((a + 1) << 24) | b for a, b in itertools.pairwise(ids)]
        counts = np.zeros(64)
        for k in keys:
            h = _splitmix_scalar(k)
            counts[h % 64] += -1.0 if h >> 63 else 1.0
        x = np.sign(counts) * np.log1p(np.abs(counts))
        norm = np.linalg.norm(x)
        np.testing.assert_allclose(fast[i], x / norm if norm else x, atol=1e-6)
    np.testing.assert_array_equal(_splitmix64(np.array([12345], dtype=np.uint64)),
                                  np.array([_splitmix_scalar(12345)], dtype=np.uint64))
    assert enc.cache_key != open_encoder(tiny_ref, HASHED.model_copy(update={"dim": 32})).cache_key


# --- the token factor's fast counts ----------------------------------------------------------------------------


def test_fast_token_counts_equal_the_labelers(tmp_path_factory: pytest.TempPathFactory) -> None:
    from marketplace.valuation.tokenization import loss_token_counts

    model_dir = build_tiny_model(tmp_path_factory.mktemp("tf-model"))
    texts = [*TEXTS, "x", "def f(x):\n    return x", "Q: what?\nA: that."]
    prompts: list[int | None] = [None] * len(texts)
    prompts[-1], prompts[3] = 9, 5
    tokenizer = load_target_model(model_dir).tokenizer
    for max_length in (16, 48, 400):
        factor = TokenFactor.from_target_model(model_dir, max_length)
        for p in (None, prompts):
            np.testing.assert_array_equal(
                factor.counts(texts, p), loss_token_counts(tokenizer, texts, p, truncation=factor.truncation))


# --- the cascade --------------------------------------------------------------------------------------------


def test_cascade_picks_exactly_the_samples_its_rule_names() -> None:
    rng = np.random.default_rng(0)
    for n, q, b, t in ((200, 0.1, 0.05, 0.0), (57, 0.0, 0.2, 0.3), (31, 0.5, 0.0, -1.0), (10, 1.0, 1.0, 0.0)):
        s = np.round(rng.normal(size=n), 1)  # ties on purpose
        rule = CascadeRule(q, b, t)
        k_top, k_band = int(np.ceil(q * n)), int(np.ceil(b * n))
        expected = []
        for i in range(n):  # the rule read literally: how many samples come before i in each order
            before_top = sum(s[j] > s[i] or (s[j] == s[i] and j < i) for j in range(n))
            d = abs(s[i] - t)
            before_band = sum(abs(s[j] - t) < d or (abs(s[j] - t) == d and j < i) for j in range(n))
            if before_top < k_top or before_band < k_band:
                expected.append(i)
        picked = pick_for_rescoring(s, rule)
        np.testing.assert_array_equal(picked, expected)
        slow = -np.arange(picked.size, dtype=np.float64)
        combined = combine_cascade(s, picked, slow)
        np.testing.assert_array_equal(combined[picked], slow)
        rest = np.setdiff1d(np.arange(n), picked)
        np.testing.assert_array_equal(combined[rest], s[rest])
    with pytest.raises(ValidationError, match="fraction"):
        CascadeRule(1.5, 0.0)
    with pytest.raises(ValidationError, match="finite"):
        pick_for_rescoring(np.array([0.0, np.nan]), CascadeRule(0.1, 0.1))


# --- a model and its encoder --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def static_run(tmp_path_factory: pytest.TempPathFactory, tiny_ref: EncoderRef) -> tuple[Path, LabeledData]:
    from marketplace.db import create_db_engine, make_session_factory
    from marketplace.db.migrate import upgrade

    tmp = tmp_path_factory.mktemp("static-run")
    engine = create_db_engine(f"sqlite:///{tmp / 'labels.db'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as s, s.begin():
        fx = make_labeled_campaign(s, n_samples=80, n_labeled=60)
    with factory() as s:
        data = load_labeled_data(s, fx.campaign_id)
    engine.dispose()
    cfg = ApproxConfig(seed=0, n_heads=2, hidden_dim=16, max_epochs=10, patience=4, embed=STATIC)
    outcome = train_approximator(data, cfg, store_root=tmp / "emb", run_dir=tmp / "run", encoder_ref=tiny_ref)
    return outcome.bundle_dir, data


def test_a_static_bundle_carries_its_encoder_and_refuses_any_other(
    static_run: tuple[Path, LabeledData], tiny_ref: EncoderRef, tmp_path: Path
) -> None:
    bundle_dir, data = static_run
    bundle = load_bundle(bundle_dir)
    assert bundle.config.embed == STATIC and (bundle_dir / "encoder" / VECTORS).is_file()
    lineage = json.loads((bundle_dir / "bundle.json").read_text())["lineage"]
    assert lineage["encoder_kind"] == "static" and lineage["encoder_source_digest"] == tiny_ref.digest
    approx = Approximator(bundle)
    assert isinstance(approx.encoder, StaticEncoder)  # from the bundle's own copy, nothing distilled
    np.testing.assert_allclose(approx.predict_texts(data.texts[:5]).score,
                               Approximator(bundle, encoder=approx.encoder).predict_texts(data.texts[:5]).score)
    others = [HashedEncoder.from_ref(tiny_ref, HASHED), load_encoder(tiny_ref, EmbedConfig(max_length=64)),
              open_encoder(tiny_ref, STATIC.model_copy(update={"dim": 8}), cache_dir=tmp_path)]
    for other in others:
        with pytest.raises(ManifestMismatchError) as err:
            Approximator(bundle, encoder=other)
        message = str(err.value)
        assert "\n" not in message and "trained with the static encoder" in message
        assert f"cannot score with the {other.embed_config.encoder} encoder" in message
    # A copy of the table that no longer hashes as recorded: refused when the model loads its encoder.
    vectors = bundle_dir / "encoder" / VECTORS
    original = vectors.read_bytes()
    try:
        vectors.write_bytes(original[:-2] + b"\1\1")
        with pytest.raises(ManifestMismatchError, match="hashes to"):
            _ = Approximator(load_bundle(bundle_dir)).encoder
    finally:
        vectors.write_bytes(original)


def test_scoring_refuses_another_encoders_store(
    static_run: tuple[Path, LabeledData], tiny_ref: EncoderRef, sqlite_engine, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    from marketplace.db import make_session_factory

    bundle_dir, _ = static_run
    factory: sessionmaker[Session] = make_session_factory(sqlite_engine)
    with factory() as s, s.begin():
        fx = make_labeled_campaign(s, n_samples=20, n_labeled=10)
        version = ApproximatorVersion(campaign_id=fx.campaign_id, label_set_id=fx.label_set_id, model_name="m",
                                      version="1", model_uri="models:/m/1", mlflow_run_id="r", metrics={})
        s.add(version)
        s.flush()
        plan = start_score_run(s, fx.campaign_id, version, resolved_from="test", shard_size=100)
    approx, store, counts = open_scorer(bundle_dir, tmp_path / "emb")
    assert store is not None and counts is None
    wrong = open_embedding_store(tmp_path / "emb", tiny_ref, HASHED, 64)
    lo, hi = plan.shards[0]
    with factory() as s:
        shard = load_shard(s, plan.score_run_id, lo, hi, is_cached=wrong.contains)
    with pytest.raises(ManifestMismatchError, match="another encoder's"):
        compute_shard(shard, approx, wrong)
    with factory() as s:
        shard = load_shard(s, plan.score_run_id, lo, hi, is_cached=store.contains)
    scores = compute_shard(shard, approx, store)
    np.testing.assert_allclose(scores.scores, approx.predict_texts([shard.texts[p] for p in range(len(shard.texts))]
                                                                   ).score, rtol=1e-3, atol=1e-9)
