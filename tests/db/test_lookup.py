""""NAME or ID" arguments (marketplace.db.lookup): the one rule behind campaign and provider lookups."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from marketplace.campaigns import get_campaign
from marketplace.db import Campaign, Provider
from marketplace.db.lookup import find_by_name_or_id
from marketplace.errors import NotFoundError
from marketplace.reports.statements import get_provider
from tests.support.catalog import make_campaign, make_provider


@pytest.mark.parametrize("entity", [Campaign, Provider])
def test_name_id_and_digit_names(session_factory: sessionmaker[Session], entity: type) -> None:
    make = make_campaign if entity is Campaign else make_provider
    with session_factory() as s, s.begin():
        plain = make(s, "docs")
        numbered = make(s, "2026")  # a name made of digits
        assert find_by_name_or_id(s, entity, "docs") is plain
        assert find_by_name_or_id(s, entity, plain.id) is plain
        assert find_by_name_or_id(s, entity, str(plain.id)) is plain  # a digit string is an id first
        assert find_by_name_or_id(s, entity, "2026") is numbered  # ... then a name
        assert find_by_name_or_id(s, entity, "nope") is None
        # An int is always an id: no name fallback (providers used to fall back, campaigns did not).
        assert find_by_name_or_id(s, entity, 2026) is None


def test_campaign_and_provider_lookups_say_how_to_fix(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        camp = make_campaign(s, "python-docs")
        prov = make_provider(s, "acme")
        assert get_campaign(s, str(camp.id)) is camp and get_provider(s, str(prov.id)) is prov
        with pytest.raises(NotFoundError, match=r"known campaigns: python-docs\); create one with"):
            get_campaign(s, "missing")
        with pytest.raises(NotFoundError, match="provider 'missing' not found"):
            get_provider(s, "missing")
