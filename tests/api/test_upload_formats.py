"""An upload in each file format ingestion reads gives the same catalog rows as ``marketplace ingest`` of the
same file: gzip'd CSV, Parquet, a zip of two members, and a prompt/response JSONL with field options (the
JSONL text case is in test_writes.py)."""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from marketplace import runtime
from marketplace.cli.app import app as cli_app
from tests.support.api import api_client, api_settings, bearer, jsonl, make_token, rows_of
from tests.support.ingest import distinct_texts

runner = CliRunner()


def _csv(texts: list[str]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["text", "source"])
    writer.writerows([t, "docs"] for t in texts)
    return buf.getvalue().encode("utf-8")


def _csv_gz(texts: list[str]) -> bytes:
    return gzip.compress(_csv(texts), mtime=0)


def _parquet(texts: list[str]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"text": texts, "n": list(range(len(texts)))}), out)
    return out.getvalue()


def _zip(texts: list[str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(zipfile.ZipInfo("part-1.jsonl", (2026, 1, 1, 0, 0, 0)), jsonl([{"text": t} for t in texts[:3]]))
        zf.writestr(zipfile.ZipInfo("part-2.csv", (2026, 1, 1, 0, 0, 0)), _csv(texts[3:]))
    return out.getvalue()


def _qa(texts: list[str]) -> bytes:
    return jsonl([{"question": f"What does this say? ({i})", "answer": t} for i, t in enumerate(texts)])


FORMATS: dict[str, tuple[Callable[[list[str]], bytes], dict[str, str]]] = {
    "data.csv.gz": (_csv_gz, {}),
    "data.parquet": (_parquet, {}),
    "bundle.zip": (_zip, {}),
    "qa.jsonl": (_qa, {"prompt_field": "question", "response_field": "answer"}),
}


@pytest.mark.parametrize("filename", sorted(FORMATS))
def test_an_upload_in_each_format_gives_the_cli_rows(filename: str, tmp_path: Path, db_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    build, fields = FORMATS[filename]
    texts = distinct_texts(6, max_chars=500, seed=3)
    path = tmp_path / "shared" / filename
    path.parent.mkdir(parents=True)
    path.write_bytes(build(texts))
    with api_client(api_settings(tmp_path, db_url)) as client:
        factory = client.app.state.session_factory  # type: ignore[attr-defined]
        token = make_token(factory, "provider", "acme")
        r = client.post("/api/v1/submissions", headers=bearer(token), data=fields,
                        files={"file": (filename, path.read_bytes())})
        assert r.status_code == 201 and r.json()["status"] == "accepted", r.text
        assert r.json()["accepted"] == 6
        api_rows = rows_of(factory, "acme")

    monkeypatch.setenv("MKT_HOME", str(tmp_path / "cli-home"))
    monkeypatch.delenv("MKT_DATABASE_URL", raising=False)
    runtime.reset()
    options = [arg for key, value in fields.items() for arg in (f"--{key.replace('_', '-')}", value)]
    try:
        done = runner.invoke(cli_app, ["ingest", str(path), "--provider", "acme", *options, "--json"])
        assert done.exit_code == 0, done.output
        cli_rows = rows_of(runtime.session_factory(), "acme")
    finally:
        runtime.reset()
    assert api_rows == cli_rows and len(api_rows["samples"]) == 6
