"""``marketplace corpus build|sources``: real provider corpora from offline public text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import JsonOpt, console, emit, handle_errors, print_table

__all__ = ["register"]

corpus_app = typer.Typer(help="Real provider corpora from offline public text (Debian text packages, Python docs).",
                         no_args_is_help=True)  # fmt: skip


def _render_manifest(data: dict[str, Any]) -> None:
    rows = []
    for p in data["providers"]:
        for f in p["files"]:
            rows.append((p["name"], p["role"], f["path"].split("/", 1)[1], f["good_records"], len(f["bad_records"]),
                         f["derivation"]))  # fmt: skip
    print_table(f"corpus in {data['out_dir']} (seed {data['seed']}, {'small' if data['small'] else 'default'} size)",
                ["provider", "role", "file", "records", "bad", "derivation"], rows)  # fmt: skip
    t = data["target"]
    console.print(f"target data: {t['target']['path']} ({t['target']['records']} records), "
                  f"validation: {t['validation']['path']} ({t['validation']['records']} records)")  # fmt: skip
    for name in data["missing_sources"]:
        console.print(f"[yellow]missing source:[/] {name} (install its Debian package to include it)")
    for skipped in data["skipped_providers"]:
        console.print(f"[yellow]skipped provider:[/] {skipped['name']}: {skipped['reason']}")
    console.print(f"total: {data['total_records']} records; manifest: {data['out_dir']}/manifest.json")


@corpus_app.command("build")
@handle_errors
def build(
    out: Path = typer.Argument(..., help="Output folder (created; reused when it holds the same build)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of every random choice; same seed, same bytes."),
    small: bool = typer.Option(False, "--small", help="A few hundred records per provider instead of thousands."),
    force: bool = typer.Option(False, "--force", help="Rebuild over a corpus built with other parameters."),
    as_json: bool = JsonOpt,
) -> None:
    """Write provider datasets (JSONL, CSV, Parquet), the campaign's target data and a manifest.json."""
    from marketplace.corpus import build_corpus

    manifest = build_corpus(out, seed=seed, small=small, overwrite=force)
    data = {"out_dir": str(out.resolve()), **manifest.model_dump(mode="json")}
    emit(data, as_json, _render_manifest)


@corpus_app.command("sources")
@handle_errors
def sources(as_json: bool = JsonOpt) -> None:
    """List the text sources, whether each is installed here, and its licence."""
    from marketplace.corpus import default_sources

    data = [
        {"name": s.name, "package": s.package, "available": s.available(), "licence": s.licence,
         "description": s.describe() if s.available() else f"install the Debian package {s.package}"}
        for s in default_sources()
    ]  # fmt: skip
    emit(data, as_json, lambda d: print_table("sources", ["name", "package", "available", "licence", "description"],
                                              [list(x.values()) for x in d]))  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(corpus_app, name="corpus")
