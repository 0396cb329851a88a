"""The SQL data model (SQLAlchemy 2 typed ORM) and its Alembic migrations.

Importing this package registers every table on ``Base.metadata``; migrations must match it
(``tests/db/test_migrations.py`` compares them). Query rules that several areas share live beside the
tables, one module each: ``eligibility`` (first owner, payable), ``label_sets`` (the latest complete
label set), ``pricing_runs`` (the latest complete pricing run of a period), ``lookup`` ("NAME or ID"
arguments), ``counting`` (row counts) and ``transient`` (which database errors a retry can cure).
"""

from marketplace.db.audit import AuditEvent
from marketplace.db.base import Base, utcnow
from marketplace.db.campaigns import Campaign, TargetSample
from marketplace.db.catalog import (
    DuplicateKind,
    Provider,
    QuarantinedRecord,
    Sample,
    Submission,
    SubmissionStatus,
)
from marketplace.db.dedup import NearDupBand, NearDupIndex, NearDupSignature
from marketplace.db.engine import (
    create_db_engine,
    is_postgres,
    is_sqlite,
    make_session_factory,
    session_scope,
)
from marketplace.db.ledger import (
    AccountKind,
    Allocation,
    EntrySide,
    JournalEntry,
    JournalTransaction,
    LedgerAccount,
    PricingRun,
    PricingRunStatus,
    TransactionKind,
)
from marketplace.db.portal_sessions import PortalSession
from marketplace.db.principals import ApiToken, IdempotencyRecord, Principal, PrincipalRole
from marketplace.db.scoring import ApproximatorEvent, ApproximatorVersion, Score, ScoreRun
from marketplace.db.valuation import Label, LabelSet, RunStatus

__all__ = [
    "AccountKind",
    "Allocation",
    "ApiToken",
    "ApproximatorEvent",
    "ApproximatorVersion",
    "AuditEvent",
    "Base",
    "Campaign",
    "DuplicateKind",
    "EntrySide",
    "IdempotencyRecord",
    "JournalEntry",
    "JournalTransaction",
    "Label",
    "LabelSet",
    "LedgerAccount",
    "NearDupBand",
    "NearDupIndex",
    "NearDupSignature",
    "PortalSession",
    "PricingRun",
    "PricingRunStatus",
    "Principal",
    "PrincipalRole",
    "Provider",
    "QuarantinedRecord",
    "RunStatus",
    "Sample",
    "Score",
    "ScoreRun",
    "Submission",
    "SubmissionStatus",
    "TargetSample",
    "TransactionKind",
    "create_db_engine",
    "is_postgres",
    "is_sqlite",
    "make_session_factory",
    "session_scope",
    "utcnow",
]
