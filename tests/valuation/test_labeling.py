"""The labeling pipeline's core: subsample, stores, resume, lineage, determinism, export, audit scoring."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import Campaign, Label, LabelSet, RunStatus, Sample, make_session_factory
from marketplace.errors import ConfigError, ManifestMismatchError, NotFoundError
from marketplace.valuation import create_label_set, label_sample_ids
from marketplace.valuation.config import CheckpointSpec, LinFiKConfig, ProjectionConfig, stable_hash
from marketplace.valuation.export import export_labels
from marketplace.valuation.sampling import allocate_per_stratum, stratified_subsample
from marketplace.valuation.store import GradientStore, StoreSpec
from marketplace.valuation.target_model import load_target_model
from tests.support.models import build_tiny_model, seed_campaign

CONFIG = LinFiKConfig(projection=ProjectionConfig(rank_in=8, rank_out=8, seed=0), max_length=48,
                      weighting="sample", reference="none", cosine=False)  # plain LinFiK: what the oracles compute


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp())


def _labels(session: Session, label_set_id: int) -> dict[int, float]:
    rows = session.execute(select(Label.sample_id, Label.score).where(Label.label_set_id == label_set_id)).all()
    return {int(a): float(b) for a, b in rows}


def _run(factory: sessionmaker[Session], campaign_id: int, artifacts: Path, config: LinFiKConfig = CONFIG,
         n: int = 20, **kw):  # type: ignore[no-untyped-def]
    with factory() as session, session.begin():
        return create_label_set(session, campaign_id, config, n=n, artifacts_dir=artifacts, batch_size=4,
                                shard_size=8, **kw)


# --- subsample ------------------------------------------------------------------------------------------



def _seeded(engine: Engine, model_dir: Path) -> tuple[sessionmaker[Session], int]:
    """A session factory on ``engine`` and the id of a seeded campaign on ``model_dir`` (committed)."""
    factory = make_session_factory(engine)
    with factory() as session, session.begin():
        return factory, seed_campaign(session, model_dir)


def test_allocation_is_proportional_and_exact() -> None:
    alloc = allocate_per_stratum({1: 12, 2: 18, 3: 6}, 20)
    assert sum(alloc.values()) == 20
    assert alloc == {1: 7, 2: 10, 3: 3}  # quotas 6.67, 10.0, 3.33 → largest remainders
    assert allocate_per_stratum({1: 2, 2: 50}, 100) == {1: 2, 2: 50}
    assert allocate_per_stratum({1: 5}, 0) == {1: 0}


def test_subsample_is_seeded_stratified_and_sorted() -> None:
    ids = np.arange(100, 160)
    strata = np.repeat([7, 8, 9], 20)
    a = stratified_subsample(ids, strata, 15, seed=3)
    assert np.array_equal(a, stratified_subsample(ids[::-1].copy(), strata[::-1].copy(), 15, seed=3))
    assert not np.array_equal(a, stratified_subsample(ids, strata, 15, seed=4))
    assert list(a) == sorted(a) and len(set(a.tolist())) == 15
    assert Counter(strata[np.searchsorted(ids, a)].tolist()) == {7: 5, 8: 5, 9: 5}


# --- end to end in one process (both engines) ----------------------------------------------------------------


def test_label_set_is_persisted_with_lineage(session_factory: sessionmaker[Session], model_dir: Path,
                                             tmp_path: Path) -> None:
    with session_factory() as session, session.begin():
        cid = seed_campaign(session, model_dir)
    summary = _run(session_factory, cid, tmp_path / "art")
    assert summary.status == "complete" and summary.n_labeled == 20 and summary.shards_computed == 3
    with session_factory() as session:
        ls = session.get(LabelSet, summary.label_set_id)
        camp = session.get(Campaign, cid)
        assert ls is not None and camp is not None
        assert ls.status == RunStatus.COMPLETE and ls.finished_at is not None
        assert ls.config == CONFIG.summary() and ls.config_hash == CONFIG.config_hash()
        assert ls.projection_seed == 0 and ls.projection_config_hash == CONFIG.projection.config_hash()
        assert ls.target_model_digest == camp.target_model_digest
        assert ls.target_data_digest == camp.target_data_digest
        assert ls.lineage["checkpoints"][0]["digest"] == camp.target_model_digest
        assert Path(ls.store_uri).is_dir() and Path(ls.store_uri, "projection-c0.safetensors").exists()
        labels = _labels(session, ls.id)
        assert len(labels) == 20
        samples = {s.id: s for s in session.execute(select(Sample).where(Sample.id.in_(labels))).scalars()}
        assert all(s.duplicate_of_id is None for s in samples.values())
        assert Counter(s.provider_id for s in samples.values()).most_common()[0][1] == 10  # 7/10/3 split
        scores = np.array(list(labels.values()))
        assert np.all(np.isfinite(scores)) and scores.std() > 0
        assert ls.stats["n"] == 20 and ls.stats["fraction_positive"] == pytest.approx(float((scores > 0).mean()))

    again = _run(session_factory, cid, tmp_path / "art")  # same request: the finished label set is returned
    assert again.reused and again.label_set_id == summary.label_set_id


def test_killed_run_resumes_and_gives_identical_labels(sqlite_engine: Engine, model_dir: Path,
                                                       tmp_path: Path) -> None:
    factory, cid = _seeded(sqlite_engine, model_dir)
    reference = _run(factory, cid, tmp_path / "uninterrupted")

    class Killed(RuntimeError):
        pass

    def crash_after_two(outcome) -> None:  # type: ignore[no-untyped-def]
        if outcome.shard_index == 1:
            raise Killed

    with pytest.raises(Killed):
        _run(factory, cid, tmp_path / "crashy", on_shard_done=crash_after_two)
    resumed = _run(factory, cid, tmp_path / "crashy")
    assert (resumed.shards_skipped, resumed.shards_computed) == (2, 1)
    with factory() as session:
        assert _labels(session, resumed.label_set_id) == _labels(session, reference.label_set_id)


def test_same_seed_same_labels_other_seed_other_subsample(sqlite_engine: Engine, model_dir: Path,
                                                          tmp_path: Path) -> None:
    factory, cid = _seeded(sqlite_engine, model_dir)
    a = _run(factory, cid, tmp_path / "a")
    b = _run(factory, cid, tmp_path / "b")
    other = CONFIG.model_copy(update={"projection": CONFIG.projection.model_copy(update={"seed": 1})})
    c = _run(factory, cid, tmp_path / "c", config=other)
    with factory() as session:
        la, lb, lc = (_labels(session, x.label_set_id) for x in (a, b, c))
    assert la == lb
    assert set(la) != set(lc)


def test_preconditioners_checkpoints_and_cosine(sqlite_engine: Engine, model_dir: Path, tmp_path: Path) -> None:
    factory, cid = _seeded(sqlite_engine, model_dir)
    results = {}
    variants = {
        "identity": CONFIG,
        "fisher": CONFIG.model_copy(update={"preconditioner": "fisher"}),
        "kfac": CONFIG.model_copy(update={"preconditioner": "kfac"}),
        "cosine": CONFIG.model_copy(update={"cosine": True}),
        # the campaign model once more as an extra checkpoint with η = 2e-3: Σ_c η_c ⟨…⟩ = 3 × plain
        "two": CONFIG.model_copy(update={"checkpoints": (CheckpointSpec(path=str(model_dir), eta=2e-3),)}),
    }
    for key, cfg in variants.items():
        summary = _run(factory, cid, tmp_path / key, config=cfg)
        with factory() as session:
            results[key] = _labels(session, summary.label_set_id)
    ids = sorted(results["identity"])
    plain = np.array([results["identity"][i] for i in ids])
    for key in ("fisher", "kfac", "cosine"):
        other = np.array([results[key][i] for i in ids])
        assert np.all(np.isfinite(other)) and not np.allclose(other, plain)
        assert np.corrcoef(other, plain)[0, 1] > 0  # a preconditioned view of the same signal, not noise
    np.testing.assert_allclose([results["two"][i] for i in ids], 3 * plain, rtol=1e-5, atol=1e-12)


def test_label_sample_ids_matches_label_set_and_needs_statistics(sqlite_engine: Engine, model_dir: Path,
                                                                 tmp_path: Path) -> None:
    factory, cid = _seeded(sqlite_engine, model_dir)
    with factory() as session:
        pool = session.execute(select(Sample.id).where(Sample.duplicate_of_id.is_(None))).scalars().all()
        audit = label_sample_ids(session, cid, pool[:6], CONFIG, work_dir=tmp_path / "work")
    summary = _run(factory, cid, tmp_path / "art", n=36)  # labels the whole pool
    with factory() as session:
        labels = _labels(session, summary.label_set_id)
    for sid, score in audit.items():
        assert score == pytest.approx(labels[sid], rel=1e-4, abs=1e-9)

    fisher = CONFIG.model_copy(update={"preconditioner": "fisher"})
    with factory() as session, pytest.raises(NotFoundError, match="run `marketplace label` first"):
        label_sample_ids(session, cid, pool[:3], fisher, work_dir=tmp_path / "work")
    fs = _run(factory, cid, tmp_path / "art", config=fisher, n=36)
    with factory() as session:
        got = label_sample_ids(session, cid, pool[:3], fisher, work_dir=tmp_path / "work")
        want = _labels(session, fs.label_set_id)
    for sid, score in got.items():
        assert score == pytest.approx(want[sid], rel=1e-4, abs=1e-9)


# --- stores and manifests ------------------------------------------------------------------------------------


def _spec(**kw) -> StoreSpec:  # type: ignore[no-untyped-def]
    base = dict(kind="train", model_digest="m" * 64, projection_digest="p" * 64, projection_config_hash="c" * 64,
                data_digest="d" * 64, dtype="float32", dim=3, max_length=16, kfac=False, layer_names=("a",),
                shard_sample_ids=((1, 2), (3,)))
    base.update(kw)
    return StoreSpec(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("field,value", [("model_digest", "x" * 64), ("projection_config_hash", "y" * 64),
                                         ("data_digest", "z" * 64), ("dtype", "float16"),
                                         ("shard_sample_ids", ((1, 2), (4,)))])
def test_store_refuses_a_manifest_mismatch_naming_the_field(tmp_path: Path, field: str, value: object) -> None:
    store = GradientStore.open(tmp_path / "s", _spec())
    store.write_shard(0, torch.ones(2, 3), torch.zeros(2), None)
    with pytest.raises(ManifestMismatchError, match=f"manifest field '{field}'"):
        GradientStore.open(tmp_path / "s", _spec(**{field: value}))


def test_store_roundtrip_resume_and_aggregates(tmp_path: Path) -> None:
    store = GradientStore.open(tmp_path / "s", _spec())
    assert store.unfinished_shards() == [0, 1]
    g0 = torch.tensor([[1.0, 2, 3], [4, 5, 6]])
    store.write_shard(0, g0, torch.tensor([0.5, 0.25]), None)
    (tmp_path / "s" / "shard-00001.safetensors.123.tmp").write_bytes(b"half-written")  # a killed writer
    reopened = GradientStore.open(tmp_path / "s", _spec())
    assert reopened.unfinished_shards() == [1]
    reopened.write_shard(1, torch.tensor([[7.0, 8, 9]]), torch.tensor([1.0]), None)
    assert reopened.unfinished_shards() == []
    torch.testing.assert_close(reopened.read_shard(0).grads, g0)
    all_g = torch.cat([g0, torch.tensor([[7.0, 8, 9]])]).double()
    torch.testing.assert_close(reopened.mean_gradient(), all_g.mean(0))
    gram, n = reopened.gram(slice(1, 3))
    torch.testing.assert_close(gram, all_g[:, 1:3].T @ all_g[:, 1:3])
    assert n == 3
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["spec"]["shard_sample_ids"] == [[1, 2], [3]] and manifest["shards"]["1"]["rows"] == 1


def test_changed_target_model_is_refused(sqlite_engine: Engine, model_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model-copy"
    shutil.copytree(model_dir, copy)
    factory, cid = _seeded(sqlite_engine, copy)
    cfg_path = copy / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["layer_norm_epsilon"] = 1e-6
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ManifestMismatchError, match="model changed since the campaign was created"):
        _run(factory, cid, tmp_path / "art")


# --- export ----------------------------------------------------------------------------------------------


def test_export_three_formats(sqlite_engine: Engine, model_dir: Path, tmp_path: Path) -> None:
    factory, cid = _seeded(sqlite_engine, model_dir)
    summary = _run(factory, cid, tmp_path / "art", n=10)
    with factory() as session:
        want = _labels(session, summary.label_set_id)
        texts = dict(session.execute(select(Sample.id, Sample.text)).all())
        out = {ext: export_labels(session, summary.label_set_id, tmp_path / f"labels.{ext}")
               for ext in ("jsonl", "csv", "parquet")}
        with pytest.raises(ConfigError, match=r"\.jsonl, \.csv or \.parquet"):
            export_labels(session, summary.label_set_id, tmp_path / "labels.xlsx")
        with pytest.raises(NotFoundError):
            export_labels(session, 999, tmp_path / "x.csv")
    assert all(o["rows"] == 10 for o in out.values())
    rows = {
        "jsonl": [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()],
        "csv": list(csv.DictReader((tmp_path / "labels.csv").open())),
        "parquet": pq.read_table(tmp_path / "labels.parquet").to_pylist(),
    }
    for fmt, got in rows.items():
        assert [int(r["sample_id"]) for r in got] == sorted(want), fmt
        for r in got:
            assert float(r["score"]) == pytest.approx(want[int(r["sample_id"])], rel=1e-12), fmt
            assert r["text"] == texts[int(r["sample_id"])], fmt
            assert str(r["provider"]).startswith("provider-"), fmt


def test_token_weighting_scales_each_label_by_its_share_of_a_full_sequence(sqlite_engine: Engine, model_dir: Path,
                                                                           tmp_path: Path) -> None:
    factory, cid = _seeded(sqlite_engine, model_dir)
    token = CONFIG.model_copy(update={"weighting": "token"})
    plain_dump = CONFIG.model_dump(mode="json")
    assert plain_dump.pop("weighting") == "sample" and plain_dump.pop("reference") == "none"
    assert CONFIG.config_hash() == stable_hash(plain_dump)  # options at their defaults leave the hash as it was
    assert token.config_hash() != CONFIG.config_hash() and "weighting" not in CONFIG.summary()

    plain = _run(factory, cid, tmp_path / "plain", n=36)
    weighted = _run(factory, cid, tmp_path / "token", config=token, n=36)
    with factory() as session:
        a, b = _labels(session, plain.label_set_id), _labels(session, weighted.label_set_id)
        rows = session.execute(select(Sample.id, Sample.text, Sample.prompt_chars).where(Sample.id.in_(a))).all()
    tokenizer = load_target_model(model_dir).tokenizer
    ids = [r.id for r in rows]
    # T(x): the tokens the loss is taken over (prompt tokens excluded, truncation at max_length included)
    counts = []
    for r in rows:
        enc = tokenizer(r.text, truncation=True, max_length=CONFIG.max_length, return_offsets_mapping=True)
        starts = [s for s, _ in enc["offset_mapping"]][1:]
        counts.append(sum(1 for s in starts if r.prompt_chars is None or s >= r.prompt_chars))
    assert max(counts) == CONFIG.max_length - 1 and min(counts) < CONFIG.max_length // 2  # both cases present
    want = [a[i] * c / CONFIG.max_length for i, c in zip(ids, counts, strict=True)]
    np.testing.assert_allclose([b[i] for i in ids], want, rtol=1e-5, atol=1e-12)
    with factory() as session:  # the audit path weights the same way
        audit = label_sample_ids(session, cid, ids[:5], token, work_dir=tmp_path / "work")
    for sid in ids[:5]:
        assert audit[sid] == pytest.approx(b[sid], rel=1e-4, abs=1e-9)
