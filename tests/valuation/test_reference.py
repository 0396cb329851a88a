"""The pool-referenced LinFiK label (LinFiKConfig.reference = "pool"): η⟨H⁻¹(ḡ_Y − ḡ_pool), g(x)⟩."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from marketplace.db import Label, LabelSet, Sample, make_session_factory
from marketplace.errors import NotFoundError
from marketplace.valuation import create_label_set, label_sample_ids
from marketplace.valuation.config import LinFiKConfig, ProjectionConfig, stable_hash
from marketplace.valuation.projection import build_projection
from marketplace.valuation.scoring import token_weights
from marketplace.valuation.summary import LabelRunSummary
from marketplace.valuation.target_model import load_target_model
from tests.support.models import build_tiny_model, seed_campaign

CONFIG = LinFiKConfig(projection=ProjectionConfig(rank_in=8, rank_out=8, seed=0), max_length=48,
                     weighting="sample", reference="none", cosine=False)
POOL = CONFIG.model_copy(update={"reference": "pool"})
# The library default's hash before the option existed: label sets made then keep their identity.
DEFAULT_HASH = "2f37f7254a4e8e34bd68a4b3c9a9cb62a37730e524b7efe5852ce9be58a8edc9"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp())


def _run(factory: sessionmaker[Session], campaign_id: int, artifacts: Path, config: LinFiKConfig,
         n: int = 36) -> LabelRunSummary:
    with factory() as session, session.begin():
        return create_label_set(session, campaign_id, config, n=n, artifacts_dir=artifacts, batch_size=4,
                                shard_size=8)


def _labels(session: Session, label_set_id: int) -> dict[int, float]:
    rows = session.execute(select(Label.sample_id, Label.score).where(Label.label_set_id == label_set_id)).all()
    return {int(a): float(b) for a, b in rows}


def _stored(run_dir: str, kind: str) -> tuple[list[int], np.ndarray]:
    """Sample ids and float64 gradients of checkpoint 0's store of ``kind``, read straight from its shards."""
    ids: list[int] = []
    grads = []
    for shard in sorted((Path(run_dir) / "c0" / kind).glob("shard-*.safetensors")):
        t = load_file(str(shard))
        ids.extend(t["sample_ids"].tolist())
        grads.append(t["grads"].to(torch.float64).numpy())
    return ids, np.concatenate(grads)


def test_the_default_keeps_its_hash_and_pool_needs_the_train_statistics() -> None:
    assert LinFiKConfig(weighting="sample", reference="none", cosine=False).config_hash() == DEFAULT_HASH
    assert "reference" not in CONFIG.summary() and POOL.summary()["reference"] == "pool"
    plain_dump = CONFIG.model_dump(mode="json")
    assert plain_dump.pop("reference") == "none" and plain_dump.pop("weighting") == "sample"
    assert CONFIG.config_hash() == stable_hash(plain_dump)
    assert POOL.config_hash() != CONFIG.config_hash()
    assert not CONFIG.needs_train_statistics() and POOL.needs_train_statistics()
    assert LinFiKConfig.from_stored(POOL.summary()) == POOL
    # The library default is the pool reference with token weighting and cosine scores; a stored summary
    # that names none of these options was made before their defaults changed, so it reads back as plain
    # per-sample LinFiK.
    assert (LinFiKConfig().reference, LinFiKConfig().weighting, LinFiKConfig().cosine) == ("pool", "token", True)
    assert LinFiKConfig.from_stored(LinFiKConfig().summary()) == LinFiKConfig()
    assert LinFiKConfig.from_stored({}) == LinFiKConfig(weighting="sample", reference="none", cosine=False)
    assert "cosine" in CONFIG.summary()  # stored from the start: the old default keeps its hash
    with pytest.raises(ValueError, match="reference"):
        LinFiKConfig(reference="target")  # type: ignore[arg-type]


def test_pool_labels_are_the_target_minus_pool_mean_inner_product(session_factory: sessionmaker[Session],
                                                                   model_dir: Path, tmp_path: Path) -> None:
    with session_factory() as session, session.begin():
        cid = seed_campaign(session, model_dir)
    summary = _run(session_factory, cid, tmp_path / "pool", POOL)
    with session_factory() as session:
        labels = _labels(session, summary.label_set_id)
        ls = session.get(LabelSet, summary.label_set_id)
        assert ls is not None and ls.config["reference"] == "pool" and ls.config_hash == POOL.config_hash()
    ids, g = _stored(summary.store_uri, "train")
    _, y = _stored(summary.store_uri, "target")
    assert sorted(ids) == sorted(labels) and len(ids) == 36
    ref = y.mean(axis=0) - g.mean(axis=0)
    want = POOL.eta * g @ ref
    np.testing.assert_allclose([labels[i] for i in ids], want, rtol=1e-4, atol=1e-9)
    # Σ_x η⟨ȳ − ḡ, g(x)⟩ = η N ⟨ȳ − ḡ, ḡ⟩: the labels add up to the pool mean's own score, N times
    total = POOL.eta * len(ids) * float(ref @ g.mean(axis=0))
    assert sum(labels.values()) == pytest.approx(total, rel=1e-3, abs=1e-9)
    assert min(want) < 0 < max(want)


def test_pool_reference_with_token_weighting_fisher_and_the_audit(sqlite_engine: Engine, model_dir: Path,
                                                                   tmp_path: Path) -> None:
    factory = make_session_factory(sqlite_engine)
    with factory() as session, session.begin():
        cid = seed_campaign(session, model_dir)
        pool_ids = session.execute(select(Sample.id).where(Sample.duplicate_of_id.is_(None))).scalars().all()
    token = POOL.model_copy(update={"weighting": "token"})
    summary = _run(factory, cid, tmp_path / "token", token)
    with factory() as session:
        labels = _labels(session, summary.label_set_id)
        rows = {r.id: r for r in session.execute(
            select(Sample.id, Sample.text, Sample.prompt_chars).where(Sample.id.in_(labels))).all()}
    ids, g = _stored(summary.store_uri, "train")
    _, y = _stored(summary.store_uri, "target")
    factor = token_weights(load_target_model(model_dir), [rows[i].text for i in ids],
                           [rows[i].prompt_chars for i in ids], token.max_length).numpy().astype(np.float64)
    want = token.eta * (g @ (y.mean(axis=0) - g.mean(axis=0))) * factor
    np.testing.assert_allclose([labels[i] for i in ids], want, rtol=1e-4, atol=1e-9)

    # fisher: per watched layer, H_l = mean g_l g_lᵀ + λI over the labeled train gradients, λ = 0.1 · tr/d
    fisher = POOL.model_copy(update={"preconditioner": "fisher"})
    fs = _run(factory, cid, tmp_path / "fisher", fisher)
    with factory() as session:
        got = _labels(session, fs.label_set_id)
    ids, g = _stored(fs.store_uri, "train")
    _, y = _stored(fs.store_uri, "target")
    rhs = y.mean(axis=0) - g.mean(axis=0)
    q = np.zeros_like(rhs)
    slices = build_projection(load_target_model(model_dir).model, fisher.projection).layer_slices()
    for sl in slices:
        width = sl.stop - sl.start
        h = g[:, sl].T @ g[:, sl] / g.shape[0]
        h += fisher.damping_ratio * np.trace(h) / width * np.eye(width)
        q[sl] = np.linalg.solve(h, rhs[sl])
    assert slices[-1].stop == g.shape[1]
    np.testing.assert_allclose([got[i] for i in ids], fisher.eta * g @ q, rtol=1e-3, atol=1e-9)

    # exact labels outside a label set reuse the query of the label set with this very config
    with factory() as session, pytest.raises(NotFoundError, match="pool reference needs its train statistics"):
        label_sample_ids(session, cid, pool_ids[:3], POOL, work_dir=tmp_path / "work")
    pool_set = _run(factory, cid, tmp_path / "pool", POOL)
    with factory() as session:
        audit = label_sample_ids(session, cid, pool_ids[:4], POOL, work_dir=tmp_path / "work")
        want_audit = _labels(session, pool_set.label_set_id)
    for sid, score in audit.items():
        assert score == pytest.approx(want_audit[sid], rel=1e-4, abs=1e-9)



def test_cli_reference_pool_reaches_the_label_set(prefect_harness: None, mkt_home: Path, model_dir: Path) -> None:
    from marketplace.cli.app import app
    from marketplace.cli.common import open_db

    _, factory = open_db()
    with factory() as session, session.begin():
        cid = seed_campaign(session, model_dir)
    runner = CliRunner()
    small = ["--rank-in", "8", "--rank-out", "8", "--max-length", "48", "--shard-size", "6", "--batch-size", "4"]
    result = runner.invoke(app, ["label", str(cid), "--n", "12", *small, "--weighting", "sample", "--reference", "pool",
                                 "--no-cosine", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["config_hash"] == POOL.config_hash()
    with factory() as session:
        ls = session.get(LabelSet, summary["label_set_id"])
        assert ls is not None and ls.config["reference"] == "pool"
    # options left out take the library's defaults, whatever they are
    result = runner.invoke(app, ["label", str(cid), "--n", "12", *small, "--json"])
    assert result.exit_code == 0, result.output
    library = LinFiKConfig(projection=ProjectionConfig(rank_in=8, rank_out=8, seed=CONFIG.seed), max_length=48)
    assert json.loads(result.stdout)["config_hash"] == library.config_hash()
    bad = runner.invoke(app, ["label", str(cid), "--n", "5", *small, "--reference", "target"])
    assert bad.exit_code == 2 and "reference" in bad.output
