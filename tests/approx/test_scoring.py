"""Scoring on SQLite and PostgreSQL: incremental, every score stored with its version, equal to the
slow text → embedding → prediction path, duplicates scored like their first owner; the audit passing
and failing; exports and the top-fraction selection against pandas; active labeling against a sort."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.approx.active import rank_for_labeling
from marketplace.approx.audit import pick_audit_samples, raise_if_failed, record_audit, skip_audit
from marketplace.approx.bundle import Approximator, load_bundle
from marketplace.approx.config import ApproxConfig, EmbedConfig
from marketplace.approx.data import load_labeled_data
from marketplace.approx.embedding_store import open_embedding_store
from marketplace.approx.encoder import EncoderRef, digest_model_dir
from marketplace.approx.export import export_scores, select_top
from marketplace.approx.scoring import compute_shard, load_shard, start_score_run, write_shard
from marketplace.approx.training import train_approximator
from marketplace.db import (
    ApproximatorVersion,
    Campaign,
    Label,
    Provider,
    RunStatus,
    Sample,
    Score,
    ScoreRun,
    Submission,
    SubmissionStatus,
)
from marketplace.errors import AuditFailedError, ConfigError, ValidationError
from tests.support.approx import CampaignFixture, build_tiny_encoder, content_hash, make_labeled_campaign, proxy_label

torch.set_num_threads(1)

N_SAMPLES, N_LABELED = 90, 60
CFG = ApproxConfig(seed=0, n_heads=3, hidden_dim=32, max_epochs=15, patience=5,
                   embed=EmbedConfig(max_length=64, batch_size=32))


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One approximator for the whole module, trained on the labels every test's campaign gets (the
    factory is deterministic), without a database."""
    tmp = tmp_path_factory.mktemp("score-model")
    path = build_tiny_encoder(tmp / "encoder")
    ref = EncoderRef(source="path", path=str(path), digest=digest_model_dir(path))
    from marketplace.db import create_db_engine, make_session_factory
    from marketplace.db.migrate import upgrade

    engine = create_db_engine(f"sqlite:///{tmp / 'labels.db'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as s, s.begin():
        fx = make_labeled_campaign(s, n_samples=N_SAMPLES, n_labeled=N_LABELED)
    with factory() as s, s.begin():
        data = load_labeled_data(s, fx.campaign_id)
    engine.dispose()
    outcome = train_approximator(data, CFG, store_root=tmp / "emb", run_dir=tmp / "run", encoder_ref=ref)
    return outcome.bundle_dir


class World:
    def __init__(self, factory: sessionmaker[Session], tmp: Path, bundle_dir: Path) -> None:
        self.factory, self.store_root = factory, tmp / "emb"
        with factory() as s, s.begin():
            self.fx: CampaignFixture = make_labeled_campaign(s, n_samples=N_SAMPLES, n_labeled=N_LABELED)
        self.bundle = load_bundle(bundle_dir)
        self.approx = Approximator(self.bundle)
        b = self.bundle
        self.store = open_embedding_store(self.store_root, b.encoder_ref, b.config.embed, b.dim)
        with factory() as s, s.begin():
            row = ApproximatorVersion(
                campaign_id=self.fx.campaign_id, label_set_id=self.fx.label_set_id, model_name="alinfik-docs",
                version="1", model_uri="models:/alinfik-docs/1", mlflow_run_id="r1", metrics={},
            )
            s.add(row)
            s.flush()
            self.version_id = row.id

    def run(self, *, shard_size: int = 25, first_owners_only: bool = False) -> int:
        with self.factory() as s, s.begin():
            version = s.get(ApproximatorVersion, self.version_id)
            assert version is not None
            plan = start_score_run(s, self.fx.campaign_id, version, resolved_from="models:/alinfik-docs@champion",
                                   shard_size=shard_size, first_owners_only=first_owners_only)
        for lo, hi in plan.shards:
            with self.factory() as s, s.begin():
                shard = load_shard(s, plan.score_run_id, lo, hi, is_cached=self.store.contains,
                                   first_owners_only=first_owners_only)
            scores = compute_shard(shard, self.approx, self.store)
            with self.factory() as s, s.begin():
                write_shard(s, scores)
        return plan.score_run_id

    def scores(self) -> pd.DataFrame:
        with self.factory() as s:
            rows = s.execute(select(Score.sample_id, Score.score, Score.score_std, Score.score_run_id,
                                    Score.approximator_version_id).order_by(Score.sample_id)).all()
        return pd.DataFrame(rows, columns=["sample_id", "score", "score_std", "score_run_id", "version_id"])


@pytest.fixture
def world(session_factory: sessionmaker[Session], tmp_path: Path, bundle_dir: Path) -> World:
    return World(session_factory, tmp_path, bundle_dir)


@pytest.fixture
def sqlite_world(sqlite_engine, tmp_path: Path, bundle_dir: Path) -> World:  # type: ignore[no-untyped-def]
    """Logic that is not database-specific runs on SQLite only (the suite stays fast)."""
    from marketplace.db import make_session_factory

    return World(make_session_factory(sqlite_engine), tmp_path, bundle_dir)


def _add_samples(factory: sessionmaker[Session], texts: list[str]) -> list[int]:
    with factory() as s, s.begin():
        prov = Provider(name="latecomer")
        s.add(prov)
        s.flush()
        sub = Submission(provider_id=prov.id, filename="late.jsonl", format="jsonl", content_sha256="l" * 64,
                         byte_size=10, status=SubmissionStatus.ACCEPTED, n_records=len(texts), n_accepted=len(texts),
                         n_quarantined=0)
        s.add(sub)
        s.flush()
        samples = [Sample(submission_id=sub.id, provider_id=prov.id, record_index=i, text=t,
                          content_hash=content_hash(t), n_chars=len(t)) for i, t in enumerate(texts)]
        s.add_all(samples)
        s.flush()
        return [x.id for x in samples]


def test_scoring_is_incremental_and_records_the_version(world: World) -> None:
    fx = world.fx
    run1 = world.run()
    df = world.scores()
    assert df["sample_id"].tolist() == fx.sample_ids  # every sample, first owners and duplicates
    assert set(df["version_id"]) == {world.version_id} and set(df["score_run_id"]) == {run1}
    # Fast path (cached embeddings, fused heads) == slow path (text -> encoder -> heads).
    slow = world.approx.predict_texts([fx.texts[i] for i in df["sample_id"]])
    np.testing.assert_allclose(df["score"], slow.score, rtol=2e-3, atol=1e-7)
    np.testing.assert_allclose(df["score_std"], slow.spread, rtol=2e-2, atol=1e-7)
    # A duplicate carries its first owner's score.
    with world.factory() as s:
        dups = s.execute(select(Sample.id, Sample.duplicate_of_id).where(Sample.duplicate_of_id.is_not(None))).all()
        run = s.get(ScoreRun, run1)
        assert run is not None and run.n_todo == run.n_scored == len(fx.sample_ids)
        assert run.resolved_from == "models:/alinfik-docs@champion"
    by_id = dict(zip(df["sample_id"], df["score"], strict=True))
    assert dups and all(by_id[d] == pytest.approx(by_id[o]) for d, o in dups)

    # Nothing new: the next run has nothing to do and writes nothing.
    run2 = world.run()
    with world.factory() as s:
        assert s.get(ScoreRun, run2).n_todo == 0  # type: ignore[union-attr]
    assert len(world.scores()) == len(fx.sample_ids)

    # New samples arrive: only they are scored, by the new run.
    new_ids = _add_samples(world.factory, ["A brand new paragraph about raising exceptions in handlers.",
                                           "Another new text, about the list type and its methods."])
    run3 = world.run(shard_size=1)
    df3 = world.scores()
    assert len(df3) == len(fx.sample_ids) + 2
    assert set(df3.loc[df3["score_run_id"] == run3, "sample_id"]) == set(new_ids)
    assert df3.loc[df3["score_run_id"] == run1, "score"].tolist() == df["score"].tolist()  # untouched


def test_a_repeated_shard_writes_nothing(world: World) -> None:
    with world.factory() as s, s.begin():
        version = s.get(ApproximatorVersion, world.version_id)
        plan = start_score_run(s, world.fx.campaign_id, version, resolved_from="x")  # type: ignore[arg-type]
        lo, hi = plan.shards[0]
        shard = load_shard(s, plan.score_run_id, lo, hi, is_cached=world.store.contains)
    scores = compute_shard(shard, world.approx, world.store)
    with world.factory() as s, s.begin():
        assert write_shard(s, scores) == len(world.fx.sample_ids)
    with world.factory() as s, s.begin():
        assert write_shard(s, scores) == 0  # a retried write is a no-op (insert-or-ignore)
        assert s.get(ScoreRun, plan.score_run_id).n_scored == len(world.fx.sample_ids)  # type: ignore[union-attr]


def test_first_owners_only(sqlite_world: World) -> None:
    sqlite_world.run(first_owners_only=True)
    assert sqlite_world.scores()["sample_id"].tolist() == sqlite_world.fx.first_owner_ids


def test_audit_passes_and_fails(world: World) -> None:
    run_id = world.run()
    fx = world.fx
    with world.factory() as s, s.begin():
        picked = pick_audit_samples(s, run_id, 20, seed=1)
        assert picked == pick_audit_samples(s, run_id, 20, seed=1) and len(picked) == 20
        labeled = set(s.scalars(select(Label.sample_id)).all())
    assert not set(picked) & labeled  # never audit on training labels
    assert set(picked) <= set(fx.first_owner_ids)
    exact = {i: proxy_label(fx.texts[i]) for i in picked}
    with world.factory() as s, s.begin():
        s.get(Campaign, fx.campaign_id).audit_threshold = -1.0  # type: ignore[union-attr]
        result = record_audit(s, run_id, exact)
    assert result.passed and result.n == 20 and result.spearman is not None
    raise_if_failed(result)  # no error
    with world.factory() as s, s.begin():
        s.get(Campaign, fx.campaign_id).audit_threshold = 0.99  # type: ignore[union-attr]
        failed = record_audit(s, run_id, {k: -v for k, v in exact.items()})
    assert failed.passed is False
    with pytest.raises(AuditFailedError, match="payouts are stopped"):
        raise_if_failed(failed)
    with world.factory() as s:
        run = s.get(ScoreRun, run_id)
        assert run is not None and run.status == RunStatus.FAILED and run.audit["passed"] is False
        assert "below the campaign's threshold" in (run.error or "")
    with world.factory() as s, s.begin():
        skipped = skip_audit(s, run_id, "no labeler")
        assert skipped.passed is None and s.get(ScoreRun, run_id).status == RunStatus.COMPLETE  # type: ignore[union-attr]
        with pytest.raises(ValidationError):
            record_audit(s, run_id, {10**9: 1.0})


def test_exports_and_selection_parquet(world: World, tmp_path: Path) -> None:
    _check_exports(world, tmp_path, ".parquet")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_exports_and_selection_text_formats(sqlite_world: World, tmp_path: Path, suffix: str) -> None:
    _check_exports(sqlite_world, tmp_path, suffix)


def _check_exports(world: World, tmp_path: Path, suffix: str) -> None:
    run_id = world.run()
    with world.factory() as s, s.begin():
        skip_audit(s, run_id, "test")  # completes the run: exports read the latest complete run's version
        res = export_scores(s, world.fx.campaign_id, tmp_path / f"scores{suffix}", batch_rows=17)
        top = select_top(s, world.fx.campaign_id, 0.1, tmp_path / f"top{suffix}", batch_rows=3)
    got = _read(tmp_path / f"scores{suffix}")
    assert res.n_rows == len(got) == len(world.fx.sample_ids)
    assert {"sample_id", "provider", "text", "score", "model_version"} <= set(got.columns)
    db = world.scores().set_index("sample_id")
    got = got.set_index("sample_id").loc[db.index]
    np.testing.assert_allclose(got["score"], db["score"], rtol=1e-12)
    assert got["text"].tolist() == [world.fx.texts[i] for i in db.index]
    assert set(got["model_version"].astype(str)) == {"1"}
    # Top 10% of unique (first-owner) samples, by a plain pandas sort.
    first = db.loc[world.fx.first_owner_ids].reset_index().sort_values(["score", "sample_id"],
                                                                        ascending=[False, True])
    k = int(np.ceil(0.1 * len(first)))
    chosen = _read(tmp_path / f"top{suffix}")
    assert top.n_rows == k and chosen["sample_id"].tolist() == first["sample_id"].head(k).tolist()
    assert chosen["text"].tolist() == [world.fx.texts[i] for i in chosen["sample_id"]]


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    return pd.DataFrame([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()])


def test_export_refuses_unknown_format_and_bad_fraction(sqlite_world: World, tmp_path: Path) -> None:
    world = sqlite_world
    run_id = world.run()
    with world.factory() as s, s.begin():
        skip_audit(s, run_id, "test")
        with pytest.raises(ConfigError, match="jsonl"):
            export_scores(s, world.fx.campaign_id, tmp_path / "x.txt")
        with pytest.raises(ValidationError):
            select_top(s, world.fx.campaign_id, 0.0, tmp_path / "x.csv")


def test_active_labeling_ranks_unlabeled_by_spread(world: World) -> None:
    run_id = world.run()
    with world.factory() as s, s.begin():
        skip_audit(s, run_id, "test")
        model, picked = rank_for_labeling(s, world.fx.campaign_id, 5)
    assert model == "alinfik-docs/1"
    df = world.scores().set_index("sample_id")
    unlabeled = [i for i in world.fx.first_owner_ids if i not in set(world.fx.labeled_ids)]
    expected = df.loc[unlabeled].reset_index().sort_values(["score_std", "sample_id"], ascending=[False, True])
    assert [c.sample_id for c in picked] == expected["sample_id"].head(5).tolist()
    assert picked[0].spread >= picked[-1].spread > 0
