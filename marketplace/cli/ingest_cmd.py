"""``marketplace ingest PATH --provider NAME``: provider files into the catalog, one transaction per file.

Each file goes through :func:`marketplace.ingest.ingest_one_file`, the same code path as the ``ingest``
flow, so the ``--json`` entries are :meth:`~marketplace.ingest.FileIngestResult.as_dict`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from marketplace.cli.common import (
    JsonOpt,
    emit,
    err_console,
    handle_errors,
    open_db,
    option_error,
    print_table,
    settings,
)
from marketplace.errors import ConfigError, RejectedFileError
from marketplace.names import display_name, validate_name
from marketplace.runtime import ingest_parameters

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    @handle_errors
    def ingest(
        path: Path = typer.Argument(..., help="A data file (.jsonl/.csv/.tsv/.parquet, optionally .gz, or .zip), "
                                    "a saved HF datasets folder, or a folder of those."),
        provider: str = typer.Option(..., "--provider", "-p", help="Provider name (created on first use)."),
        fmt: str | None = typer.Option(None, "--format", "-f",
                                       help="jsonl | csv | tsv | parquet | hf (default: from the name/content)."),
        text_field: str | None = typer.Option(None, "--text-field", help="Field holding the text."),
        prompt_field: str | None = typer.Option(None, "--prompt-field", help="Field holding the prompt."),
        response_field: str | None = typer.Option(None, "--response-field", help="Field holding the response."),
        near_duplicates: bool | None = typer.Option(
            None, "--near-duplicates/--no-near-duplicates",
            help="Link near-duplicates with MinHash LSH (default: MKT_NEAR_DUPLICATES)."),
        as_json: bool = JsonOpt,
    ) -> None:
        """Ingest provider data: validate, normalise, deduplicate; each file is accepted or rejected whole.

        Exits with code 5 when any file is rejected (the others are still ingested).
        """
        from pydantic import ValidationError as PydanticValidationError

        from marketplace.db.checkpoints import background_checkpoints
        from marketplace.ingest import FieldMapping, IngestOptions, ingest_one_file, list_ingestible
        from marketplace.ingest.sources import FileFormat

        provider = validate_name(provider, "provider")  # before any work: a bad name is a one-line error
        if fmt is not None and fmt.lower() not in {f.value for f in FileFormat}:
            raise ConfigError(f"--format {fmt!r} is not one of {', '.join(f.value for f in FileFormat)}")
        try:
            mapping = FieldMapping(text_field=text_field, prompt_field=prompt_field, response_field=response_field)
            limits, dedup = ingest_parameters(near_duplicates, settings())
            options = IngestOptions(fmt=fmt, mapping=mapping, limits=limits, dedup_params=dedup)
        except PydanticValidationError as exc:
            raise option_error(exc, "ingestion") from exc
        if not path.exists() and not path.is_symlink():
            raise ConfigError(f"{path} does not exist; pass a file or a folder")
        files = list_ingestible(path)
        if not files:
            raise ConfigError(f"{path} holds no .jsonl/.csv/.tsv/.parquet/.gz/.zip file or saved dataset")

        engine, factory = open_db()
        results = []
        # SQLite: a file's WAL checkpoint runs in a thread while the next file is read (db/checkpoints.py).
        with background_checkpoints(engine) as checkpoint:
            for i, file in enumerate(files, 1):
                log.info("[%d/%d] ingesting %s for %s", i, len(files), display_name(str(file)), display_name(provider))
                result = ingest_one_file(factory, file, provider, options)
                checkpoint()
                if result.refused:
                    # escape: "[reason_code]" in the message would otherwise be eaten as rich markup
                    err_console.print(f"[bold red]rejected[/] {escape(str(file))}: {escape(result.message or '')}",
                                      highlight=False, soft_wrap=True)
                results.append(result)
        n_rejected = sum(r.status == "rejected" for r in results)
        doc = {"provider": provider, "files": [r.as_dict() for r in results], "n_files": len(results),
               "n_rejected": n_rejected}

        def render(d: dict[str, Any]) -> None:
            print_table(f"ingest for {provider}",
                        ["file", "status", "submission", "records", "accepted", "quarantined", "exact dup",
                         "near dup", "reason"],
                        [(Path(r["file"]).name, r["status"], r.get("submission_id", ""), r.get("records", ""),
                          r.get("accepted", ""), r.get("quarantined", ""), r.get("exact_duplicates", ""),
                          r.get("near_duplicates", ""), r.get("reason_code", "")) for r in d["files"]])

        emit(doc, as_json, render)
        if n_rejected:
            raise typer.Exit(code=RejectedFileError.exit_code)
