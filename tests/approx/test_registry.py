"""The MLflow registry adapter and the promotion gate, on the embedded SQLite store and on a
loopback MLflow tracking server: register → resolve by alias → load round trip, lineage tags,
artifacts, the gate keeping a worse model out and letting a better one in, manual promotion, and the
SQL lineage copy (versions and events)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.approx.bundle import Approximator, load_bundle
from marketplace.approx.config import ApproxConfig, EmbedConfig
from marketplace.approx.data import LabeledData
from marketplace.approx.encoder import EncoderRef, digest_model_dir
from marketplace.approx.history import list_version_summaries, version_history
from marketplace.approx.publish import promote_version, publish_outcome, record_publication
from marketplace.approx.registry import MlflowRegistry, model_name_for
from marketplace.approx.training import TrainingOutcome, train_approximator
from marketplace.db import ApproximatorEvent, ApproximatorVersion
from marketplace.errors import NotFoundError
from tests.support.approx import build_tiny_encoder, content_hash, make_labeled_campaign, proxy_label, pydoc_paragraphs

torch.set_num_threads(1)

EMBED = EmbedConfig(max_length=64, batch_size=32)
N_LABELS = 400


def _labeled_data() -> LabeledData:
    texts = list(pydoc_paragraphs()[:N_LABELS])
    hashes = [content_hash(t) for t in texts]
    lineage = {"campaign_id": "1", "campaign": "docs", "label_set_id": "1", "target_model_digest": "m" * 64,
               "target_data_digest": "d" * 64, "projection_config_hash": "p" * 64}
    return LabeledData(1, "docs", 1, np.arange(N_LABELS), hashes, texts, np.array([proxy_label(t) for t in texts]),
                       hashes[:8], texts[:8], lineage)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainingOutcome]:
    """Three approximators trained once on the same labels (so they share one held-out split)."""
    root = tmp_path_factory.mktemp("registry-runs")
    enc = build_tiny_encoder(root / "encoder")
    ref = EncoderRef(source="path", path=str(enc), digest=digest_model_dir(enc))
    data = _labeled_data()
    configs = {
        # MLP heads, whose training length and learning rate make a weak and a broken model on purpose.
        "weak": ApproxConfig(seed=0, head="mlp", max_epochs=2, embed=EMBED),
        "broken": ApproxConfig(seed=0, head="mlp", max_epochs=1, lr=1e-7, embed=EMBED),
        "strong": ApproxConfig(seed=0, head="mlp", embed=EMBED),
    }
    return {
        name: train_approximator(data, cfg, store_root=root / "emb", run_dir=root / name, encoder_ref=ref)
        for name, cfg in configs.items()
    }


def _registry(tmp_path: Path) -> MlflowRegistry:
    return MlflowRegistry(f"sqlite:///{tmp_path / 'tracking.db'}", (tmp_path / "mlruns").as_uri())


def _round_trip(registry: MlflowRegistry, outcome: TrainingOutcome, tmp_path: Path) -> None:
    name = model_name_for("Docs 2026!")
    assert name == "alinfik-docs-2026"
    pub = publish_outcome(outcome, registry, name, store_root=tmp_path / "emb", download_dir=tmp_path / "dl",
                          floor=-1.0)
    assert pub.promoted and pub.version == "1" and pub.model_uri == f"models:/{name}/1"
    assert registry.version_for_alias(name, "champion") == "1"
    assert registry.version_for_alias(name, "candidate") == "1"
    # Resolve by alias and load through MLflow: same predictions as the local bundle.
    texts = ["An exception is raised when an error occurs.", "Lists are mutable sequences.", "try: pass"]
    model = registry.load_pyfunc(f"models:/{name}@champion")
    got = model.predict(pd.DataFrame({"text": texts}))
    want = Approximator(load_bundle(outcome.bundle_dir)).predict_texts(texts)
    np.testing.assert_allclose(got["score"].to_numpy(), want.score, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(got["spread"].to_numpy(), want.spread, rtol=1e-5, atol=1e-9)
    # Lineage tags on the version, metrics on the run, the plots as artifacts.
    info = registry.get_version(name, "1")
    for tag in ("label_set_id", "target_model_digest", "target_data_digest", "projection_config_hash",
                "code_version", "encoder_digest", "approx_config_hash", "promotion_reason"):
        assert info.tags.get(tag), tag
    assert info.tags["promotion_decision"] == "promoted"
    assert info.metrics["approx_spearman"] == pytest.approx(outcome.metrics["approx_spearman"])
    assert "tfidf_ridge_spearman" in info.metrics and "target_cosine_spearman" in info.metrics
    artifacts = {a.path for a in registry.client.list_artifacts(pub.run_id, "evaluation")}
    assert {"evaluation/learning_curve.png", "evaluation/pred_vs_exact.png"} <= artifacts
    bundle = registry.download_bundle(name, "1", tmp_path / "dl2")
    assert load_bundle(bundle).config == load_bundle(outcome.bundle_dir).config


def test_register_resolve_load_round_trip_sqlite_store(
    outcomes: dict[str, TrainingOutcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    _round_trip(_registry(tmp_path), outcomes["strong"], tmp_path)
    # Every MLflow call went to the configured store, none to MLflow's default ./mlflow.db.
    assert list(workdir.iterdir()) == []


def test_gate_keeps_a_worse_model_out_and_lets_a_better_one_in(
    outcomes: dict[str, TrainingOutcome], tmp_path: Path
) -> None:
    registry = _registry(tmp_path)
    name = "alinfik-docs"
    kw = {"store_root": tmp_path / "emb", "download_dir": tmp_path / "dl"}
    weak, broken, strong = outcomes["weak"], outcomes["broken"], outcomes["strong"]
    assert strong.metrics["approx_spearman"] > weak.metrics["approx_spearman"] > broken.metrics["approx_spearman"]

    v1 = publish_outcome(weak, registry, name, floor=0.0, **kw)
    assert v1.promoted and "no champion yet" in v1.reason
    # Worse than the champion on the same held-out labels: stays a candidate, even with no floor.
    v2 = publish_outcome(broken, registry, name, floor=-1.0, **kw)
    assert not v2.promoted and "does not beat champion v1" in v2.reason
    assert v2.decision["champion_spearman"] == pytest.approx(weak.metrics["approx_spearman"])
    assert registry.version_for_alias(name, "champion") == "1"
    assert registry.version_for_alias(name, "candidate") == "2"
    assert registry.get_version(name, "2").run_tags["promotion_decision"] == "rejected"
    # Better on the same held-out labels: becomes champion.
    v3 = publish_outcome(strong, registry, name, floor=0.0, **kw)
    assert v3.promoted and "beats champion v1" in v3.reason
    assert registry.version_for_alias(name, "champion") == "3"
    # Good enough to beat the champion is not enough under a high floor.
    v4 = publish_outcome(strong, registry, name, floor=0.99, **kw)
    assert not v4.promoted and "below the floor" in v4.reason
    assert registry.version_for_alias(name, "champion") == "3"
    assert [v.version for v in registry.list_versions(name)] == ["1", "2", "3", "4"]


def test_sql_lineage_history_and_manual_promotion(
    outcomes: dict[str, TrainingOutcome], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    registry = _registry(tmp_path)
    with session_factory() as s, s.begin():
        fx = make_labeled_campaign(s, name="docs", n_samples=30, n_labeled=20)
    name = model_name_for(fx.campaign_name)
    kw = {"store_root": tmp_path / "emb", "download_dir": tmp_path / "dl"}
    for key, floor in (("weak", 0.0), ("broken", -1.0), ("strong", 0.0)):
        pub = publish_outcome(outcomes[key], registry, name, floor=floor, **kw)
        with session_factory() as s, s.begin():
            record_publication(s, fx.campaign_id, fx.label_set_id, outcomes[key], pub)
            record_publication(s, fx.campaign_id, fx.label_set_id, outcomes[key], pub)  # idempotent
    with session_factory() as s, s.begin():
        rows = s.scalars(select(ApproximatorVersion).order_by(ApproximatorVersion.id)).all()
        assert [(r.version, r.promoted) for r in rows] == [("1", True), ("2", False), ("3", True)]
        assert rows[1].decision and "does not beat" in rows[1].decision
        assert rows[2].lineage["projection_config_hash"] == "p" * 64 and rows[2].mode == "frozen"
        history = version_history(s, fx.campaign_id)
        assert [(e["version"], e["action"]) for e in history] == [
            ("1", "registered"), ("1", "promoted"), ("2", "registered"), ("2", "rejected"),
            ("3", "registered"), ("1", "demoted"), ("3", "promoted"),
        ]
        summaries = list_version_summaries(s, fx.campaign_id, name, registry)
        assert [v["aliases"] for v in summaries] == [[], [], ["candidate", "champion"]]
        assert summaries[0]["metrics"]["approx_spearman"] == pytest.approx(outcomes["weak"].metrics["approx_spearman"])
    # An operator puts version 1 back, with a reason on the record.
    with session_factory() as s, s.begin():
        promote_version(s, registry, fx.campaign_id, name, "1", "v3 misbehaves on new providers")
    assert registry.version_for_alias(name, "champion") == "1"
    with session_factory() as s, s.begin():
        events = s.scalars(select(ApproximatorEvent).order_by(ApproximatorEvent.id.desc()).limit(2)).all()
        assert [e.action for e in events] == ["promoted", "demoted"]
        assert "v3 misbehaves" in events[0].reason


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_loopback_tracking_server_round_trip(outcomes: dict[str, TrainingOutcome], tmp_path: Path) -> None:
    """`mlflow server` on 127.0.0.1 as a subprocess: register, resolve by alias and load through HTTP."""
    port = _free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        registry = MlflowRegistry(f"http://127.0.0.1:{port}")  # artifacts proxied by the server
        _round_trip(registry, outcomes["strong"], tmp_path)
        assert any((tmp_path / "server-artifacts").rglob("bundle.json"))  # stored server-side
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


class _FakeRegistry:
    """The Registry protocol without MLflow, whose champion cannot be downloaded any more."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {"champion": "1"}
        self.decisions: list[tuple[str, bool]] = []

    def log_candidate(self, outcome: TrainingOutcome, model_name: str) -> Any:
        from marketplace.approx.registry import LoggedVersion

        self.aliases["candidate"] = "2"
        return LoggedVersion(model_name, "2", "run-2")

    def version_for_alias(self, model_name: str, alias: str) -> str | None:
        return self.aliases.get(alias)

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self.aliases[alias] = version

    def download_bundle(self, model_name: str, version: str, dst: str | Path) -> Path:
        raise NotFoundError(f"models:/{model_name}/{version} holds no ALinFiK bundle")

    def record_decision(self, logged: Any, decision: Any) -> None:
        self.decisions.append((logged.version, decision.promote))


def test_a_champion_that_cannot_be_re_evaluated_is_not_replaced_silently(tmp_path: Path) -> None:
    outcome = TrainingOutcome(run_dir=tmp_path, metrics={"approx_spearman": 0.9}, lineage={}, config={},
                              config_hash="h", n_train=1, n_val=1, n_test=1, epochs=1)
    registry = _FakeRegistry()
    pub = publish_outcome(outcome, registry, "alinfik-x", store_root=tmp_path, download_dir=tmp_path, floor=0.5)
    assert not pub.promoted and "could not be re-evaluated" in pub.reason
    assert registry.aliases == {"champion": "1", "candidate": "2"} and registry.decisions == [("2", False)]
