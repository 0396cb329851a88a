"""Tasks of the ``ingest`` flow: list a provider's files, ingest one file, publish the summary.

``ingest_file_task`` wraps :func:`marketplace.ingest.ingest_file` in its own transaction (opened
here, at the edge, from the settings). It retries only what a retry can cure: transient database
errors (lock timeouts, serialization failures, deadlocks, dropped connections) and the unique-index
races of a concurrent ingest of overlapping data (the other transaction committed the same first
owner or provider first; the retry sees its rows and links to them). A rejected file
(:class:`~marketplace.errors.RejectedFileError`) is final: no retry.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy.exc import IntegrityError

from marketplace.ingest import DedupParams, FieldMapping, IngestLimits, ingest_file, list_ingestible
from tasks.common import is_transient_db_error, session_factory, task_settings

__all__ = ["ingest_file_task", "is_retryable_ingest_error", "list_files_task", "publish_ingest_summary_task"]

log = logging.getLogger(__name__)

# Unique indexes two concurrent ingests can race on (see marketplace.db.catalog / marketplace.db.dedup).
_RACE_CONSTRAINTS = (
    "uq_samples_first_owner_hash",
    "uq_submissions_provider_id_content_sha256",
    "uq_providers_name",
    "uq_near_dup_indexes_params_sha256",
)


def is_retryable_ingest_error(exc: BaseException) -> bool:
    if is_transient_db_error(exc):
        return True
    return isinstance(exc, IntegrityError) and any(name in str(exc.orig) for name in _RACE_CONSTRAINTS)


def _retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as exc:
        retry = is_retryable_ingest_error(exc)
        log.info("ingest of %s failed with %s: %s", getattr(task_run, "name", "?"), type(exc).__name__,
                 "retrying" if retry else "not retrying")
        return retry
    return False


@task(name="list-ingestible-files", cache_policy=NO_CACHE)
def list_files_task(path: str) -> list[str]:
    """The files (and saved HF dataset folders) under ``path``, sorted."""
    return [str(p) for p in list_ingestible(path)]


@task(name="ingest-file", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 5],
      retry_condition_fn=_retry_condition)
def ingest_file_task(path: str, provider: str, fmt: str | None = None, text_field: str | None = None,
                     prompt_field: str | None = None, response_field: str | None = None,
                     near_duplicates: bool | None = None) -> dict[str, Any]:
    """Ingest one file in one transaction; returns the :class:`IngestReport` as a dict.

    Raises RejectedFileError (no retry) when the file is rejected; nothing of it is written.
    """
    cfg = task_settings()
    mapping = FieldMapping(text_field=text_field, prompt_field=prompt_field, response_field=response_field)
    limits = IngestLimits.from_settings(cfg)
    use_near = cfg.near_duplicates if near_duplicates is None else near_duplicates
    dedup = DedupParams.from_settings(cfg) if use_near else None
    with session_factory(cfg)() as session, session.begin():
        report = ingest_file(session, path, provider, fmt=fmt, mapping=mapping, limits=limits, dedup_params=dedup)
    result = dataclasses.asdict(report)
    result["file"] = path
    result["status"] = "existing" if report.existing else report.status
    return result


@task(name="publish-ingest-summary", cache_policy=NO_CACHE)
def publish_ingest_summary_task(provider: str, results: list[dict[str, Any]]) -> str:
    """A table artifact: accepted / quarantined / duplicate counts (or the rejection) per file."""
    rows = [
        {
            "file": r["file"],
            "status": r["status"],
            "submission_id": r.get("submission_id"),
            "records": r.get("n_records", 0),
            "accepted": r.get("n_accepted", 0),
            "quarantined": r.get("n_quarantined", 0),
            "exact_duplicates": r.get("n_exact_duplicates", 0),
            "near_duplicates": r.get("n_near_duplicates", 0),
            "reason": r.get("reason_code") or "",
        }
        for r in results
    ]
    key = "ingest-" + "".join(ch if ch.isalnum() else "-" for ch in provider.lower()).strip("-")
    artifact_id = create_table_artifact(
        table=rows, key=key[:100] or "ingest",
        description=f"Ingestion of {len(rows)} file(s) for provider {provider!r}",
    )
    return str(artifact_id)
