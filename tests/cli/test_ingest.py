"""``marketplace ingest``: --json documents, a folder with a rejected file, re-ingest, exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketplace.cli.app import app
from tests.support.ingest import distinct_texts, write_jsonl

runner = CliRunner()


@pytest.fixture
def provider_folder(tmp_path: Path) -> Path:
    texts = distinct_texts(12, max_chars=800)
    folder = tmp_path / "acme"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"text": t, "source": "python-docs"} for t in texts[:8]])
    with (folder / "b.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["text"], *[[t] for t in texts[8:12]]])
    (folder / "c_empty.jsonl").write_bytes(b"")
    (folder / "README.md").write_text("not data")  # not a supported suffix: not listed
    return folder


def test_ingest_folder_json_reports_each_file_and_exits_5_on_rejection(mkt_home: Path,
                                                                        provider_folder: Path) -> None:
    result = runner.invoke(app, ["ingest", str(provider_folder), "--provider", "acme", "--json"])
    assert result.exit_code == 5, result.output
    doc = json.loads(result.stdout)  # stdout holds the JSON document and nothing else
    assert [Path(f["file"]).name for f in doc["files"]] == ["a.jsonl", "b.csv", "c_empty.jsonl"]
    assert [f["status"] for f in doc["files"]] == ["accepted", "accepted", "rejected"]
    assert doc["files"][0]["accepted"] == 8 and doc["files"][1]["accepted"] == 4
    assert doc["files"][2]["reason_code"] == "empty_file"
    assert doc["n_rejected"] == 1
    assert "empty_file" in result.stderr

    again = runner.invoke(app, ["ingest", str(provider_folder / "a.jsonl"), "-p", "acme", "--json"])
    assert again.exit_code == 0, again.output
    [entry] = json.loads(again.stdout)["files"]
    assert entry["status"] == "existing" and entry["submission_id"] == doc["files"][0]["submission_id"]

    copy = runner.invoke(app, ["ingest", str(provider_folder / "a.jsonl"), "-p", "other", "--json"])
    [entry] = json.loads(copy.stdout)["files"]
    assert entry["status"] == "copy" and entry["exact_duplicates"] == 8

    status = json.loads(runner.invoke(app, ["status", "--json"]).stdout)["catalog"]
    assert status["providers"] == 2 and status["submissions"] == 3 and status["copies"] == 1
    assert status["samples"] == 20 and status["first_owner_samples"] == 12 and status["duplicates"] == 8


def test_ingest_human_output_and_bad_options(mkt_home: Path, provider_folder: Path) -> None:
    ok = runner.invoke(app, ["ingest", str(provider_folder / "b.csv"), "--provider", "acme", "--format", "csv",
                             "--text-field", "text", "--no-near-duplicates"])
    assert ok.exit_code == 0, ok.output
    assert "ingest for acme" in ok.stdout and "rejec" not in ok.stdout

    both = runner.invoke(app, ["ingest", str(provider_folder / "a.jsonl"), "-p", "acme", "--text-field", "t",
                               "--prompt-field", "p", "--response-field", "r"])
    assert both.exit_code == 2 and "either text_field" in both.stderr
    bad_format = runner.invoke(app, ["ingest", str(provider_folder / "a.jsonl"), "-p", "acme", "--format", "xml"])
    assert bad_format.exit_code == 2 and "xml" in bad_format.stderr
    missing = runner.invoke(app, ["ingest", str(provider_folder / "nope.jsonl"), "-p", "acme"])
    assert missing.exit_code == 2
    wrong_mapping = runner.invoke(app, ["ingest", str(provider_folder / "a.jsonl"), "-p", "zed",
                                        "--text-field", "body", "--json"])
    assert wrong_mapping.exit_code == 5
    [entry] = json.loads(wrong_mapping.stdout)["files"]
    assert entry["reason_code"] == "wrong_field_mapping" and "'text'" in entry["error"]
