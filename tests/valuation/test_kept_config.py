"""Which LinFiK configuration a label run uses when none is asked for (marketplace.valuation.runs)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import LabelSet, RunStatus
from marketplace.valuation.config import LinFiKConfig
from marketplace.valuation.runs import kept_label_config
from tests.support.catalog import make_campaign


def _label_set(session: Session, campaign_id: int, config: LinFiKConfig, status: RunStatus) -> None:
    session.add(LabelSet(campaign_id=campaign_id, config=config.summary(), config_hash=config.config_hash(),
                         projection_seed=0, projection_config_hash="p" * 64, target_model_digest="m" * 64,
                         target_data_digest="d" * 64, store_uri=f"file:///tmp/{config.config_hash()}",
                         n_requested=1, n_labeled=1, status=status))
    session.flush()


def test_the_latest_complete_configuration_is_kept(session_factory: sessionmaker[Session]) -> None:
    # plain: per-sample plain LinFiK, stored the way label sets were before those options existed (both
    # keys left out), so reading it back checks that a missing key means the old value, not today's default
    plain = LinFiKConfig(weighting="sample", reference="none", cosine=False)
    fisher = LinFiKConfig(preconditioner="fisher")
    assert "weighting" not in plain.summary() and "reference" not in plain.summary()
    with session_factory() as s, s.begin():
        campaign = make_campaign(s)
        assert kept_label_config(s, campaign.id) == LinFiKConfig()  # the first label set: the defaults
        _label_set(s, campaign.id, plain, RunStatus.COMPLETE)
        _label_set(s, campaign.id, fisher, RunStatus.FAILED)  # a failed run's configuration is not kept
        kept = kept_label_config(s, campaign.id)
        assert kept == plain and kept.weighting == "sample" and kept.reference == "none"
        _label_set(s, campaign.id, fisher, RunStatus.COMPLETE)
        assert kept_label_config(s, campaign.id).config_hash() == fisher.config_hash()
