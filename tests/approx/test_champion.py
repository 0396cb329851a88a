"""Which version scores a campaign (marketplace.approx.champion) and which exact labeler audits it
(marketplace.approx.audit_labelers): the rules the score flow's tasks call."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from marketplace.approx.audit import ExactLabeler
from marketplace.approx.audit_labelers import LabelerContext, build_labeler, label_for_audit
from marketplace.approx.champion import resolve_champion
from marketplace.approx.names import model_name_for
from marketplace.db import ApproximatorVersion, LabelSet, RunStatus
from marketplace.errors import ConfigError, NotFoundError, ValidationError
from tests.support.catalog import make_campaign


class FakeRegistry:
    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = aliases

    def version_for_alias(self, model_name: str, alias: str) -> str | None:
        return self.aliases.get(f"{model_name}@{alias}")


def _version(session: Session, campaign_id: int, model_name: str, version: str) -> ApproximatorVersion:
    label_set = LabelSet(campaign_id=campaign_id, config={}, config_hash="c" * 64, projection_seed=0,
                         projection_config_hash="p" * 64, target_model_digest="m" * 64, target_data_digest="d" * 64,
                         store_uri=f"file:///tmp/{model_name}/{version}", n_requested=1, n_labeled=1,
                         status=RunStatus.COMPLETE)
    session.add(label_set)
    session.flush()
    row = ApproximatorVersion(campaign_id=campaign_id, label_set_id=label_set.id, model_name=model_name,
                              version=version, model_uri=f"models:/{model_name}/{version}", mlflow_run_id="r",
                              metrics={})
    session.add(row)
    session.flush()
    return row


def test_champion_resolves_once_to_a_recorded_version(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        campaign, other = make_campaign(s, "Docs 2026"), make_campaign(s, "other")
        name = model_name_for(campaign.name)
        v2 = _version(s, campaign.id, name, "2")
        _version(s, other.id, name, "9")  # a row of another campaign under the same name
        with pytest.raises(NotFoundError, match="has no champion yet"):
            resolve_champion(s, FakeRegistry({}), campaign.name)

        registry = FakeRegistry({f"{name}@champion": "2"})
        champion = resolve_champion(s, registry, str(campaign.id))
        assert (champion.model_name, champion.version) == (name, "2")
        assert champion.resolved_from == f"models:/{name}@champion"
        assert (champion.approximator_version_id, champion.label_set_id) == (v2.id, v2.label_set_id)
        pinned = resolve_champion(s, registry, campaign.name, "2")
        assert pinned.resolved_from == f"models:/{name}/2" and pinned.approximator_version_id == v2.id
        with pytest.raises(NotFoundError, match="not recorded here"):
            resolve_champion(s, registry, campaign.name, "3")
        with pytest.raises(ValidationError, match=f"trained for campaign {other.id}"):
            resolve_champion(s, registry, campaign.name, "9")


def _fake_factory(ctx: LabelerContext) -> ExactLabeler:
    return lambda ids: {int(i): float(ctx.campaign_id) for i in ids}


def test_the_audit_labeler_is_named_by_a_string(tmp_path: Path) -> None:
    ctx = LabelerContext(sessionmaker(), 7, 1, tmp_path, "cpu")
    assert build_labeler("none", ctx) is None
    assert build_labeler(f"{__name__}:_fake_factory", ctx)([1, 2]) == {1: 7.0, 2: 7.0}  # type: ignore[misc]
    with pytest.raises(ConfigError, match="must be 'linfik', 'none' or 'package"):
        build_labeler("linfik-please", ctx)
    with pytest.raises(ConfigError, match="cannot be imported"):
        build_labeler("no.such.module:factory", ctx)

    assert label_for_audit("no.such.module:factory", ctx, [1], 0).skip_reason == "audit size 0"  # never built
    assert label_for_audit("none", ctx, [1], 5).skip_reason == "no labeler"
    assert label_for_audit(f"{__name__}:_fake_factory", ctx, [], 5).skip_reason == "nothing to audit"
    done = label_for_audit(f"{__name__}:_fake_factory", ctx, [3], 5)
    assert done.labels == {3: 7.0} and done.skip_reason is None
