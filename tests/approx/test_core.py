"""ALinFiK core without database or registry: metrics vs scipy, label scaling, the fused head fast
path vs the module, seeded determinism of training (frozen and fine-tuned), the embedding cache,
the encoder's batching vs one-by-one, and MiniLM vs sentence-transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from marketplace.approx.config import ApproxConfig, EmbedConfig
from marketplace.approx.embedding_store import EmbeddingStore, open_embedding_store
from marketplace.approx.encoder import EncoderRef, digest_model_dir, load_encoder, pool_embeddings
from marketplace.approx.gate import decide_promotion
from marketplace.approx.heads import HeadEnsemble, predict_numpy
from marketplace.approx.metrics import agreement, kendall, pearson, precision_at_top, spearman
from marketplace.approx.scaling import fit_scaler
from marketplace.approx.text_stats import text_statistics
from marketplace.approx.train import fit_finetune, fit_heads, split_indices
from marketplace.errors import ConfigError, ManifestMismatchError, ValidationError
from tests.support.approx import build_tiny_encoder, pydoc_paragraphs

torch.set_num_threads(1)


# --- metrics ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    true = rng.normal(size=200)
    pred = true + rng.normal(scale=1.5, size=200)
    pred[:20] = np.round(pred[:20])  # ties
    assert spearman(pred, true) == pytest.approx(stats.spearmanr(pred, true).statistic, abs=1e-12)
    assert pearson(pred, true) == pytest.approx(stats.pearsonr(pred, true).statistic, abs=1e-12)
    assert kendall(pred, true) == pytest.approx(stats.kendalltau(pred, true).statistic, abs=1e-12)


def test_precision_at_top_against_brute_force() -> None:
    rng = np.random.default_rng(3)
    for n in (10, 37, 200):
        true, pred = rng.normal(size=n), rng.normal(size=n)
        k = int(np.ceil(0.1 * n))
        top_true = set(sorted(range(n), key=lambda i: -true[i])[:k])
        top_pred = set(sorted(range(n), key=lambda i: -pred[i])[:k])
        assert precision_at_top(pred, true, 0.1) == pytest.approx(len(top_true & top_pred) / k)
    assert precision_at_top(np.arange(50.0), np.arange(50.0)) == 1.0
    assert precision_at_top(-np.arange(50.0), np.arange(50.0)) == 0.0


def test_metrics_edge_cases() -> None:
    assert spearman(np.ones(10), np.arange(10.0)) == 0.0  # constant prediction: no ranking information
    a = agreement(np.arange(20.0), np.arange(20.0))
    assert (a.spearman, a.pearson, a.kendall, a.precision_at_10, a.n) == (1.0, 1.0, 1.0, 1.0, 20)
    with pytest.raises(ValidationError):
        spearman(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    with pytest.raises(ValidationError):
        pearson(np.ones(3), np.ones(4))


# --- scaling, split, gate -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["standard", "quantile"])
def test_label_scaler_round_trip_and_order(kind: str) -> None:
    rng = np.random.default_rng(0)
    y = rng.standard_t(df=2, size=300) * 1e-4  # heavy-tailed, like LinFiK
    y[:10] = y[10]  # ties
    scaler = fit_scaler(y, kind)  # type: ignore[arg-type]
    z = scaler.transform(y)
    np.testing.assert_allclose(scaler.inverse(z), y, rtol=1e-9, atol=1e-15)
    order = np.argsort(y, kind="stable")
    assert np.all(np.diff(z[order]) >= 0)  # monotone: rankings survive
    if kind == "quantile":
        assert abs(z.mean()) < 0.05 and 0.8 < z.std() < 1.1
    with pytest.raises(ValidationError):
        fit_scaler(np.ones(5), kind)  # type: ignore[arg-type]


def test_split_holds_out_by_content_hash_and_seeds_validation() -> None:
    keys = [f"{i:064x}" for i in range(400)]
    cfg = ApproxConfig(seed=3)
    a, b = split_indices(keys, cfg), split_indices(keys, cfg)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert sorted(np.concatenate(a).tolist()) == list(range(400))
    assert 50 < len(a[2]) < 110 and len(a[1]) == 40  # ~20% held out, 10% validation
    other = split_indices(keys, ApproxConfig(seed=4))
    np.testing.assert_array_equal(a[2], other[2])  # held-out rows do not depend on the seed...
    assert not np.array_equal(a[1], other[1])  # ...validation rows do
    # ...nor on which other samples were labeled: a superset holds out a superset.
    sub = [keys[i] for i in range(0, 400, 3)]
    held_sub = {sub[i] for i in split_indices(sub, cfg)[2]}
    assert held_sub == {keys[i] for i in a[2]} & set(sub)


def test_promotion_gate_decisions() -> None:
    assert decide_promotion(0.7).promote  # no champion, above floor
    below = decide_promotion(0.4, floor=0.5)
    assert not below.promote and "below the floor" in below.reason
    worse = decide_promotion(0.6, champion_version="3", champion_spearman=0.7)
    assert not worse.promote and "does not beat champion v3" in worse.reason
    tie = decide_promotion(0.7, champion_version="3", champion_spearman=0.7)
    assert not tie.promote  # a tie keeps the incumbent
    better = decide_promotion(0.75, champion_version="3", champion_spearman=0.7)
    assert better.promote and "beats champion v3" in better.reason
    assert not decide_promotion(0.45, floor=0.5, champion_version="1", champion_spearman=0.1).promote
    with pytest.raises(ValidationError):
        decide_promotion(0.7, floor=2.0)


# --- heads --------------------------------------------------------------------------------------------


def test_fused_numpy_head_matches_module() -> None:
    gen = torch.Generator().manual_seed(0)
    heads = HeadEnsemble(4, 24, 16, dropout=0.3, generator=gen).eval()
    x = torch.randn(300, 24, generator=gen)
    with torch.no_grad():
        slow = heads(x).numpy()  # (K, N) without dropout
    params = {k: v.detach().numpy() for k, v in heads.state_dict().items()}
    fast = predict_numpy(params, x.numpy().astype(np.float16), chunk_rows=64)
    slow16 = heads(torch.as_tensor(x.numpy().astype(np.float16).astype(np.float32))).detach().numpy()
    np.testing.assert_allclose(fast, slow16, rtol=1e-5, atol=1e-5)
    assert fast.shape == slow.shape == (4, 300)


def _synthetic(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=d)
    y = np.tanh(x @ w / np.sqrt(d)) + 0.1 * rng.normal(size=n)
    return x, y


def test_fit_heads_is_deterministic_for_a_seed_and_learns() -> None:
    x, y = _synthetic(300, 16, 0)
    cfg = ApproxConfig(seed=5, n_heads=3, hidden_dim=32, max_epochs=25, patience=10, batch_size=32)
    tr, va, te = split_indices([str(i) for i in range(len(y))], cfg)
    a = fit_heads(x[tr], y[tr], x[va], y[va], cfg)
    b = fit_heads(x[tr], y[tr], x[va], y[va], cfg)
    for key in a.head_params:
        np.testing.assert_array_equal(a.head_params[key], b.head_params[key])
    assert [h.val_spearman for h in a.history] == [h.val_spearman for h in b.history]
    c = fit_heads(x[tr], y[tr], x[va], y[va], cfg.model_copy(update={"seed": 6}))
    assert not np.array_equal(a.head_params["w1"], c.head_params["w1"])
    pred = predict_numpy(a.head_params, x[te]).mean(axis=0)
    assert spearman(pred, y[te]) > 0.8
    # Heads differ (own init, dropout, bootstrap): the ensemble has a spread.
    assert predict_numpy(a.head_params, x[te]).std(axis=0).mean() > 1e-3


# --- encoder and embedding cache ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"))


def _tiny_ref(path: Path) -> EncoderRef:
    return EncoderRef(source="path", path=str(path), digest=digest_model_dir(path))


def test_batched_length_sorted_embedding_matches_one_by_one(tiny_encoder_dir: Path) -> None:
    enc = load_encoder(_tiny_ref(tiny_encoder_dir), EmbedConfig(batch_size=4, max_length=64))
    texts = [*list(pydoc_paragraphs()[:11]), "short"]
    fast = enc.embed(texts)
    slow = np.stack([enc.embed([t])[0] for t in texts])  # no padding at all
    np.testing.assert_allclose(fast, slow, atol=2e-5)
    # Stacked features (the default): one unit-norm block per hidden state, then the text statistics.
    blocks = fast[:, : enc.n_pooled * enc.hidden_size].reshape(len(texts), enc.n_pooled, enc.hidden_size)
    np.testing.assert_allclose(np.linalg.norm(blocks, axis=2), 1.0, atol=1e-5)
    np.testing.assert_allclose(fast[:, enc.n_pooled * enc.hidden_size :], text_statistics(texts))
    pooled = load_encoder(_tiny_ref(tiny_encoder_dir), EmbedConfig(batch_size=4, max_length=64, features="pooled"))
    np.testing.assert_allclose(pooled.embed(texts), blocks[:, -1], atol=2e-5)  # the last block alone


def test_pooling_an_inner_layer_equals_that_hidden_state(tiny_encoder_dir: Path) -> None:
    """Dropping the blocks after ``layer`` gives exactly hidden state ``layer`` of the full model."""
    ref = _tiny_ref(tiny_encoder_dir)
    texts = list(pydoc_paragraphs()[20:26])
    full = load_encoder(ref, EmbedConfig(layer=-1, max_length=64, features="pooled"))
    ids, mask = full.pad(full.tokenize(texts))
    with torch.no_grad():
        hidden = full.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    for layer in (0, 1, 2):
        enc = load_encoder(ref, EmbedConfig(layer=layer, max_length=64, features="pooled"))
        np.testing.assert_allclose(enc.embed(texts), pool_embeddings(hidden[layer], mask).numpy(), atol=1e-5)
    np.testing.assert_allclose(full.embed(texts), pool_embeddings(hidden[-1], mask).numpy(), atol=1e-5)
    with pytest.raises(ConfigError, match="does not exist"):
        load_encoder(ref, EmbedConfig(layer=5))  # the tiny model has 4 blocks


def test_pooling_ignores_padding() -> None:
    hidden = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out = pool_embeddings(hidden, mask)
    expected0 = hidden[0, :3].mean(0)
    torch.testing.assert_close(out[0], expected0 / expected0.norm())


def test_encoder_digest_mismatch_is_refused(tiny_encoder_dir: Path) -> None:
    ref = EncoderRef(source="path", path=str(tiny_encoder_dir), digest="0" * 64)
    with pytest.raises(ManifestMismatchError, match="hashes to"):
        load_encoder(ref)


def test_embedding_store_round_trip_cache_hit_and_manifest(tmp_path: Path, tiny_encoder_dir: Path) -> None:
    ref = _tiny_ref(tiny_encoder_dir)
    store = open_embedding_store(tmp_path, ref, EmbedConfig(), 8)
    keys = [f"{i:064x}" for i in range(10)]
    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.array([[float(t)] * 8 for t in texts], dtype=np.float32) / 10

    texts = [str(i) for i in range(10)]
    _x, st = store.ensure(keys[:6] + keys[:2], texts[:6] + texts[:2], embed, chunk_size=4)
    assert (st.n_hit, st.n_computed) == (0, 6) and calls == [4, 2]  # duplicates embedded once, 2 shards
    x2, st2 = store.ensure(keys, texts, embed)
    assert (st2.n_hit, st2.n_computed) == (6, 4) and calls == [4, 2, 4]
    np.testing.assert_allclose(x2[:, 0], np.arange(10) / 10, atol=1e-3)  # float16 storage
    # A fresh store object (another process) sees every shard; nothing is recomputed.
    again = open_embedding_store(tmp_path, ref, EmbedConfig(), 8)
    assert len(again.contains(keys)) == 10 and again.contains(keys).all()
    np.testing.assert_array_equal(again.get(keys), x2)
    # Same cache key folder, different manifest (another dim): refused.
    with pytest.raises(ManifestMismatchError):
        EmbeddingStore(tmp_path, store.dir.name, dict(store.manifest, encoder_digest="x"), 8)
    with pytest.raises(ValidationError, match="not cached"):
        store.get(["f" * 64])
    # Another embedding config is another folder: no false hits.
    other = open_embedding_store(tmp_path, ref, EmbedConfig(max_length=32), 8)
    assert not other.contains(keys).any()
    assert not open_embedding_store(tmp_path, ref, EmbedConfig(features="pooled"), 8).contains(keys).any()


def test_a_store_written_before_stacked_features_still_opens(tmp_path: Path, tiny_encoder_dir: Path) -> None:
    """Pooled stores carry the manifest they had before the option existed (no ``features`` key)."""
    import json

    ref = _tiny_ref(tiny_encoder_dir)
    store = open_embedding_store(tmp_path, ref, EmbedConfig(features="pooled"), 8)
    manifest = json.loads((store.dir / "manifest.json").read_text())
    assert "features" not in manifest["embed_config"]
    manifest["embed_config"] = {"layer": 3, "max_length": 256, "precision": "float32"}  # as written then
    (store.dir / "manifest.json").write_text(json.dumps(manifest))
    assert open_embedding_store(tmp_path, ref, EmbedConfig(features="pooled"), 8).dir == store.dir


def test_finetune_is_deterministic_and_moves_the_encoder(tiny_encoder_dir: Path) -> None:
    texts = list(pydoc_paragraphs()[:48])
    y = np.array([len(t) % 7 for t in texts], dtype=np.float64)
    z = (y - y.mean()) / y.std()
    cfg = ApproxConfig(mode="finetune", seed=1, n_heads=2, hidden_dim=16, max_epochs=2, patience=2, batch_size=8,
                       encoder_lr=1e-3, embed=EmbedConfig(max_length=48, batch_size=16, features="pooled"))
    ref = _tiny_ref(tiny_encoder_dir)
    before = {k: v.clone() for k, v in load_encoder(ref, cfg.embed).model.state_dict().items()}
    results = []
    for _ in range(2):
        enc = load_encoder(ref, cfg.embed)
        results.append(fit_finetune(enc, texts[:36], z[:36], texts[36:], z[36:], cfg))
    a, b = results
    for key in a.head_params:
        np.testing.assert_array_equal(a.head_params[key], b.head_params[key])
    assert a.encoder_state is not None and b.encoder_state is not None
    for key in a.encoder_state:
        torch.testing.assert_close(a.encoder_state[key], b.encoder_state[key], rtol=0, atol=0)
    moved = [k for k in before if not torch.equal(before[k], a.encoder_state[k])]
    assert moved, "fine-tuning must change the encoder weights"


# --- the real MiniLM --------------------------------------------------------------------------------------


def test_minilm_matches_sentence_transformers() -> None:
    """With the last layer pooled, our embedding is exactly sentence-transformers' all-MiniLM-L6-v2."""
    from sentence_transformers import SentenceTransformer

    minilm = load_encoder(None, EmbedConfig(batch_size=16, layer=-1, features="pooled"))
    texts = list(pydoc_paragraphs()[100:116])
    ours = minilm.embed(texts)
    reference = SentenceTransformer(minilm.ref.path, device="cpu", local_files_only=True).encode(
        texts, batch_size=16, normalize_embeddings=True
    )
    np.testing.assert_allclose(ours, reference, atol=2e-5)
    assert ours.shape == (16, 384)


def test_bundle_round_trip_legacy_config_and_tampering(tmp_path: Path, tiny_encoder_dir: Path) -> None:
    import json

    from marketplace.approx.bundle import ModelBundle, load_bundle, save_bundle
    from marketplace.approx.config import canonical_hash

    gen = torch.Generator().manual_seed(0)
    heads = HeadEnsemble(2, 32, 8, 0.0, gen)
    params = {k: v.detach().numpy() for k, v in heads.state_dict().items()}
    scaler = fit_scaler(np.random.default_rng(0).normal(size=50), "quantile")
    bundle = ModelBundle(ApproxConfig(head="mlp", hidden_dim=8, n_heads=2), _tiny_ref(tiny_encoder_dir), params, scaler,
                         lineage={"label_set_id": "7"})
    out = save_bundle(bundle, tmp_path / "b")
    back = load_bundle(out)
    assert back.config == bundle.config and back.lineage == {"label_set_id": "7"}
    np.testing.assert_array_equal(back.head_params["w1"], params["w1"])
    np.testing.assert_array_equal(back.scaler.knots_y, scaler.knots_y)
    # A bundle written before `embed.layer` existed keeps the meaning it was trained with (last layer).
    meta = json.loads((out / "bundle.json").read_text())
    del meta["config"]["embed"]["layer"]
    # ...and one written before `head` and `features` existed: MLP heads on one pooled hidden state.
    del meta["config"]["head"], meta["config"]["embed"]["features"], meta["config"]["stats_weight"]
    meta["config_hash"] = canonical_hash(meta["config"])
    (out / "bundle.json").write_text(json.dumps(meta))
    legacy = load_bundle(out).config
    assert (legacy.embed.layer, legacy.head, legacy.embed.features) == (-1, "mlp", "pooled")
    assert legacy.embed.config_hash() == EmbedConfig(layer=-1, features="pooled").config_hash()
    # An edited config no longer matches its hash: refused.
    meta["config"]["hidden_dim"] = 9
    (out / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(ManifestMismatchError, match="recorded hash"):
        load_bundle(out)


def test_a_ridge_bundle_with_feature_scaling_round_trips(tmp_path: Path, tiny_encoder_dir: Path) -> None:
    from marketplace.approx.bundle import Approximator, ModelBundle, load_bundle, save_bundle

    ref = _tiny_ref(tiny_encoder_dir)
    enc = load_encoder(ref, EmbedConfig(max_length=64))
    texts = list(pydoc_paragraphs()[:30])
    x = enc.embed(texts)
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, enc.dim)).astype(np.float32), "b": rng.normal(size=3).astype(np.float32)}
    scaling = (rng.normal(size=enc.dim).astype(np.float32), rng.uniform(0.5, 2, size=enc.dim).astype(np.float32))
    scaler = fit_scaler(rng.normal(size=50), "standard")
    bundle = ModelBundle(ApproxConfig(n_heads=3, embed=EmbedConfig(max_length=64)), ref, params, scaler,
                         feature_scaling=scaling)
    back = load_bundle(save_bundle(bundle, tmp_path / "b"))
    assert (back.n_heads, back.dim) == (3, enc.dim)
    np.testing.assert_array_equal(back.feature_scaling[1], scaling[1])  # type: ignore[index]
    got = Approximator(back, encoder=enc).predict_embeddings(x)
    z = ((x - scaling[0]) / scaling[1]) @ params["w"].T + params["b"]  # (N, K) by hand
    np.testing.assert_allclose(got.score, scaler.inverse(z.mean(axis=1)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.score, Approximator(back, encoder=enc).predict_texts(texts).score)
