"""The two demo sizes never share a providers' pool (marketplace.demo.demo_settings, require_own_pool)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from marketplace import runtime
from marketplace.db import Sample, Submission
from marketplace.db.eligibility import is_payable
from marketplace.demo import DEMO_SIZES, demo_settings, require_own_pool
from marketplace.errors import ConfigError
from marketplace.settings import get_settings
from tests.support.catalog import make_campaign, make_provider, make_submission

DEFAULT, SMALL = DEMO_SIZES["default"], DEMO_SIZES["small"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("MKT_HOME", "MKT_DATABASE_URL", "MKT_MLFLOW_TRACKING_URI", "MKT_MODELS_DIR", "MKT_ARTIFACTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    yield
    runtime.reset()


def _payable(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Sample)
                              .join(Submission, Submission.id == Sample.submission_id).where(is_payable())) or 0)


def test_small_demo_submissions_are_not_in_the_default_pool(tmp_path: Path, clean_env: None) -> None:
    cfg = get_settings(home=tmp_path / "home")
    default, small = demo_settings(cfg, DEFAULT), demo_settings(cfg, SMALL)
    assert default is cfg and small.home == cfg.home / "demo-small"
    assert small.resolved_database_url != default.resolved_database_url
    assert small.resolved_mlflow_tracking_uri != default.resolved_mlflow_tracking_uri
    assert small.resolved_models_dir == default.resolved_models_dir  # keyed model folders: safe to share

    with runtime.session_factory(small)() as session, session.begin():
        require_own_pool(session, SMALL)
        make_campaign(session, SMALL.campaign)
        make_submission(session, make_provider(session, "foldoc-computing"), ["a small-demo sample text"] * 1)
        assert _payable(session) == 1
    with runtime.session_factory(default)() as session:
        require_own_pool(session, DEFAULT)
        assert _payable(session) == 0


def test_a_shared_database_refuses_the_other_size(session_factory: sessionmaker[Session]) -> None:
    """With MKT_DATABASE_URL both sizes share one catalog: the demo refuses to mix them."""
    with session_factory() as session, session.begin():
        make_campaign(session, SMALL.campaign)
        require_own_pool(session, SMALL)
        with pytest.raises(ConfigError, match=f"{SMALL.campaign}.*pool of {DEFAULT.campaign}.*another database"):
            require_own_pool(session, DEFAULT)
