"""Who owns a sample and who may be paid (marketplace.db.eligibility), on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import Sample, Submission, SubmissionStatus
from marketplace.db.eligibility import is_first_owner, is_payable
from tests.support.catalog import make_copy_submission, make_provider, make_submission


def _ids(session: Session, *where: object) -> set[int]:
    stmt = select(Sample.id).join(Submission, Submission.id == Sample.submission_id).where(*where)  # type: ignore[arg-type]
    return set(session.scalars(stmt))


def test_first_owners_and_payable_samples(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        alice, bob = make_provider(s), make_provider(s)
        original, owned = make_submission(s, alice, ["first text of alice", "second text of alice"])
        _, copies = make_copy_submission(s, bob, original, owned)
        owner_ids, copy_ids = {x.id for x in owned}, {x.id for x in copies}

        assert _ids(s, is_first_owner()) == owner_ids
        assert _ids(s, ~is_first_owner()) == copy_ids
        assert _ids(s, is_payable()) == owner_ids


def test_payable_needs_an_accepted_submission(session_factory: sessionmaker[Session]) -> None:
    """Ingestion never leaves a first owner in a copy submission; if one were there, it would not be paid."""
    with session_factory() as s, s.begin():
        carol = make_provider(s)
        sub, [stray] = make_submission(s, carol, ["a first owner in a copy submission"])
        sub.status = SubmissionStatus.COPY
        s.flush()

        assert _ids(s, is_first_owner()) == {stray.id}
        assert _ids(s, is_payable()) == set()
