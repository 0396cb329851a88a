"""Tasks of the ``ingest`` flow: list a provider's files, ingest one file, publish the summary.

``ingest_file_task`` is one call of :func:`marketplace.ingest.ingest_one_file` (the code path of
``marketplace ingest``: one transaction per file, retried on transient conflicts, a refused file
returned as ``rejected``) with the parameters the settings give. Prefect retries the task only on
what :func:`marketplace.db.transient.is_retryable_idempotent_write_error` calls retryable (the
database stayed unreachable through the core's own retries); a rejected file is a result, not an error.
"""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from marketplace.ingest import (
    FieldMapping,
    FileIngestResult,
    IngestOptions,
    ingest_one_file,
    list_ingestible,
    summary_rows,
)
from marketplace.reports.md_safe import md_escape, md_table_rows
from marketplace.runtime import ingest_parameters
from tasks.artifacts import artifact_key
from tasks.common import retry_on_idempotent_write_error, session_factory, task_settings

__all__ = ["ingest_file_task", "list_ingestible_files_task", "publish_ingest_summary_task"]


@task(name="list-ingestible-files", cache_policy=NO_CACHE)
def list_ingestible_files_task(path: str) -> list[str]:
    """The files (and saved HF dataset folders) under ``path``, sorted."""
    return [str(p) for p in list_ingestible(path)]


@task(name="ingest-file", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 5],
      retry_condition_fn=retry_on_idempotent_write_error)
def ingest_file_task(path: str, provider: str, fmt: str | None = None, text_field: str | None = None,
                     prompt_field: str | None = None, response_field: str | None = None,
                     near_duplicates: bool | None = None) -> FileIngestResult:
    """Ingest one file in its own transaction: accepted, copy, existing or rejected."""
    cfg = task_settings()
    limits, dedup = ingest_parameters(near_duplicates, cfg)
    mapping = FieldMapping(text_field=text_field, prompt_field=prompt_field, response_field=response_field)
    options = IngestOptions(fmt=fmt, mapping=mapping, limits=limits, dedup_params=dedup)
    return ingest_one_file(session_factory(cfg), path, provider, options)


@task(name="publish-ingest-summary", cache_policy=NO_CACHE)
def publish_ingest_summary_task(provider: str, results: list[FileIngestResult]) -> str:
    """A table artifact: accepted / quarantined / duplicate counts (or the rejection) per file."""
    artifact_id = create_table_artifact(
        table=md_table_rows(summary_rows(results)), key=artifact_key("ingest", provider),
        description=f"Ingestion of {len(results)} file(s) for provider {md_escape(provider)}",
    )
    return str(artifact_id)
