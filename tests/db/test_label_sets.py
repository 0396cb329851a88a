"""The latest complete label set of a campaign (marketplace.db.label_sets), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import LabelSet, RunStatus
from marketplace.db.label_sets import complete_label_sets, latest_complete_label_set, require_latest_label_set
from marketplace.errors import NotFoundError
from tests.support.catalog import make_campaign


def _label_set(session: Session, campaign_id: int, status: RunStatus, config_hash: str) -> LabelSet:
    row = LabelSet(campaign_id=campaign_id, config={"h": config_hash}, config_hash=config_hash * 64,
                   projection_config_hash="p" * 64, projection_seed=0, target_model_digest="m" * 64,
                   target_data_digest="d" * 64,
                   store_uri=f"file:///tmp/ls-{config_hash}", n_requested=1, n_labeled=1, status=status)
    session.add(row)
    session.flush()
    return row


def test_newest_complete_label_set_wins(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        campaign, other = make_campaign(s), make_campaign(s)
        assert latest_complete_label_set(s, campaign.id) is None
        assert complete_label_sets(s, campaign.id) == []
        with pytest.raises(NotFoundError, match=f"campaign {campaign.id} has no complete label set; run"):
            require_latest_label_set(s, campaign.id)

        old_a = _label_set(s, campaign.id, RunStatus.COMPLETE, "a")
        new_b = _label_set(s, campaign.id, RunStatus.COMPLETE, "b")
        new_a = _label_set(s, campaign.id, RunStatus.COMPLETE, "a")
        _label_set(s, campaign.id, RunStatus.RUNNING, "a")  # newer, but never counts until complete
        _label_set(s, campaign.id, RunStatus.FAILED, "b")
        foreign = _label_set(s, other.id, RunStatus.COMPLETE, "a")  # another campaign's, newer still

        assert latest_complete_label_set(s, campaign.id) is new_a
        assert require_latest_label_set(s, campaign.id) is new_a
        assert latest_complete_label_set(s, campaign.id, config_hash="b" * 64) is new_b
        assert latest_complete_label_set(s, campaign.id, config_hash="c" * 64) is None
        assert complete_label_sets(s, campaign.id) == [new_a, new_b, old_a]
        assert complete_label_sets(s, campaign.id, config_hash="a" * 64) == [new_a, old_a]
        assert latest_complete_label_set(s, other.id) is foreign
