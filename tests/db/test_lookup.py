""""NAME or ID" arguments (marketplace.db.lookup): the one rule behind campaign and provider lookups."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from marketplace.campaigns import get_campaign
from marketplace.db import Campaign, Provider
from marketplace.db.lookup import find_by_name_or_id
from marketplace.errors import ConflictError, NotFoundError
from marketplace.reports.statements import get_provider
from tests.support.catalog import make_campaign, make_provider


@pytest.mark.parametrize("entity", [Campaign, Provider])
def test_name_id_and_digit_names(session_factory: sessionmaker[Session], entity: type) -> None:
    make = make_campaign if entity is Campaign else make_provider
    with session_factory() as s, s.begin():
        plain = make(s, "docs")
        numbered = make(s, "2026")  # an all-digit name stored before names were validated
        assert find_by_name_or_id(s, entity, "docs") is plain
        assert find_by_name_or_id(s, entity, plain.id) is plain
        assert find_by_name_or_id(s, entity, str(plain.id)) is plain  # a digit string is an id...
        assert find_by_name_or_id(s, entity, f"id:{plain.id}") is plain  # ... and id:N says so explicitly
        assert find_by_name_or_id(s, entity, f"ID:{numbered.id}") is numbered
        assert find_by_name_or_id(s, entity, "2026") is numbered  # no row has id 2026: the legacy name
        assert find_by_name_or_id(s, entity, "nope") is None
        assert find_by_name_or_id(s, entity, "id:2026") is None  # an explicit id never falls back to a name
        # An int is always an id: no name fallback.
        assert find_by_name_or_id(s, entity, 2026) is None


@pytest.mark.parametrize("entity", [Campaign, Provider])
def test_a_digit_name_never_shadows_another_rows_id(session_factory: sessionmaker[Session], entity: type) -> None:
    """A provider named "1" (stored before the name rule) must not receive provider id 1's statement, nor
    provider id 1 the other's: the lookup refuses to guess and says how to be explicit."""
    make = make_campaign if entity is Campaign else make_provider
    with session_factory() as s, s.begin():
        first = make(s, "first")
        shadow = make(s, str(first.id))
        with pytest.raises(ConflictError, match=rf"pass id:{first.id} for the id, or id:{shadow.id}") as info:
            find_by_name_or_id(s, entity, str(first.id))
        assert "\n" not in str(info.value)
        assert find_by_name_or_id(s, entity, f"id:{first.id}") is first
        assert find_by_name_or_id(s, entity, f"id:{shadow.id}") is shadow


def test_campaign_and_provider_lookups_say_how_to_fix(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        camp = make_campaign(s, "python-docs")
        prov = make_provider(s, "acme")
        assert get_campaign(s, str(camp.id)) is camp and get_provider(s, str(prov.id)) is prov
        with pytest.raises(NotFoundError, match=r"known campaigns: 'python-docs'\); create one with"):
            get_campaign(s, "missing")
        with pytest.raises(NotFoundError, match="provider 'missing' not found"):
            get_provider(s, "missing")
        # A hostile stored name is shown inert in the error (one line, escaped).
        make_campaign(s, "evil\u202e[/]\nname")
        with pytest.raises(NotFoundError) as info:
            get_campaign(s, "missing")
        assert "\n" not in str(info.value) and "\u202e" not in str(info.value) and "\\u202e" in str(info.value)
