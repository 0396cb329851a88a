"""The ``ingest`` flow: a file or a provider's folder into the catalog (docs/architecture.md).

list the files -> ingest each in its own transaction, in sorted order (so "first owner" is
deterministic), a rejected file never stopping the others -> publish a summary table artifact.
Returns one dict per file, :meth:`marketplace.ingest.FileIngestResult.as_dict` (the entries of
``marketplace ingest --json``). Files that fail for another reason (the database stayed down through
the retries) are reported as ``status="failed"`` and make the flow fail after the summary is published.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from marketplace.ingest import FileIngestResult
from tasks.ingest import ingest_file_task, list_ingestible_files_task, publish_ingest_summary_task

__all__ = ["ingest"]


@flow(name="ingest", log_prints=False)
def ingest(path: str, provider: str, fmt: str | None = None, text_field: str | None = None,
           prompt_field: str | None = None, response_field: str | None = None,
           near_duplicates: bool | None = None) -> list[dict[str, Any]]:
    """Ingest ``path`` (a file, a saved HF dataset folder, or a folder of those) for ``provider``."""
    results: list[FileIngestResult] = []
    for file in list_ingestible_files_task(path):
        state = ingest_file_task(file, provider, fmt, text_field, prompt_field, response_field, near_duplicates,
                                 return_state=True)
        outcome = state.result(raise_on_failure=False)
        results.append(outcome if isinstance(outcome, FileIngestResult) else FileIngestResult.failed(file, outcome))
    publish_ingest_summary_task(provider, results)
    failed = [r.file for r in results if r.status == "failed"]
    if failed:
        raise RuntimeError(f"ingestion failed (not rejected) for {failed}; see the task logs")
    return [r.as_dict() for r in results]
