"""Writes through the API: an upload gives the same catalog rows as ``marketplace ingest`` of the same file,
a rejected file is a 422 with its reason, Idempotency-Key replays or conflicts, a buyer creates its own
campaign, the operator starts a revaluation, and every write names its principal in the audit trail."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from marketplace import runtime
from marketplace.cli.app import app as cli_app
from marketplace.db import AuditEvent, IdempotencyRecord, Submission
from tests.support.api import api_client, api_settings, bearer, jsonl, make_token, rows_of
from tests.support.ingest import distinct_texts

runner = CliRunner()


@pytest.fixture
def client(tmp_path: Path, db_url: str) -> Iterator[TestClient]:
    with api_client(api_settings(tmp_path, db_url)) as c:
        yield c


def _factory(client: TestClient) -> Any:
    return client.app.state.session_factory  # type: ignore[attr-defined]


def _provider_file(tmp_path: Path) -> Path:
    """Real texts, one too short (quarantined), one duplicated inside the file, one prompt/response record."""
    texts = distinct_texts(6, max_chars=600)
    records = [{"text": t} for t in texts[:4]] + [{"text": "too short"}, {"text": texts[0]}]
    path = tmp_path / "shared" / "acme-data.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jsonl(records))
    return path


def test_an_upload_gives_the_same_catalog_rows_as_the_cli(client: TestClient, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = _provider_file(tmp_path)
    token = make_token(_factory(client), "provider", "acme")
    r = client.post("/api/v1/submissions", headers=bearer(token),
                    files={"file": (path.name, path.read_bytes(), "application/octet-stream")})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "accepted" and body["records"] == 6 and body["quarantined"] == 1
    assert body["accepted"] == 5 and body["already_in_market"] == 1 and sum(body["reasons"].values()) == 1
    detail = client.get(f"/api/v1/submissions/{body['submission_id']}", headers=bearer(token)).json()
    assert [q["location"] for q in detail["quarantined"]] == ["line 5"]
    assert detail["already_in_market"] == [{"record_index": 5, "kind": "exact", "note": "already in the market"}]
    api_rows = rows_of(_factory(client), "acme")

    home = tmp_path / "cli-home"
    monkeypatch.setenv("MKT_HOME", str(home))
    monkeypatch.delenv("MKT_DATABASE_URL", raising=False)
    runtime.reset()
    try:
        done = runner.invoke(cli_app, ["ingest", str(path), "--provider", "acme", "--json"])
        assert done.exit_code == 0, done.output
        cli_rows = rows_of(runtime.session_factory(), "acme")
    finally:
        runtime.reset()
    assert api_rows == cli_rows and len(api_rows["samples"]) == 5


def test_a_rejected_file_is_422_with_its_reason_and_writes_nothing(client: TestClient) -> None:
    token = make_token(_factory(client), "provider", "acme")
    r = client.post("/api/v1/submissions", headers=bearer(token), files={"file": ("empty.jsonl", b"")})
    assert r.status_code == 422 and r.json()["error"] == "rejected_file" and r.json()["reason_code"] == "empty_file"
    assert "mkt-upload" not in r.text  # the server's temporary path is not shown
    with _factory(client)() as s:
        assert s.scalar(select(func.count()).select_from(Submission)) == 0


def test_idempotency_key_replays_the_first_response_and_refuses_another_body(client: TestClient,
                                                                              tmp_path: Path) -> None:
    factory = _factory(client)
    token = make_token(factory, "provider", "acme")
    data = _provider_file(tmp_path).read_bytes()
    headers = {**bearer(token), "Idempotency-Key": "upload-0001"}
    first = client.post("/api/v1/submissions", headers=headers, files={"file": ("a.jsonl", data)})
    again = client.post("/api/v1/submissions", headers=headers, files={"file": ("a.jsonl", data)})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    changed = data + b'{"text": "one more record here"}\n'
    other = client.post("/api/v1/submissions", headers=headers, files={"file": ("a.jsonl", changed)})
    assert other.status_code == 409 and other.json()["error"] == "conflict"
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Submission)) == 1
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "ingested")) == 1
    # keys are per principal: another provider's same key is its own
    bob = make_token(factory, "provider", "bob")
    mine = client.post("/api/v1/submissions", headers={**bearer(bob), "Idempotency-Key": "upload-0001"},
                       files={"file": ("b.jsonl", jsonl([{"text": "bob has his own text, long enough to keep"}]))})
    assert mine.status_code == 201 and mine.json()["status"] == "accepted"
    bad_key = client.post("/api/v1/submissions", headers={**bearer(bob), "Idempotency-Key": "has space"},
                          files={"file": ("b.jsonl", data)})
    assert bad_key.status_code == 422 and "Idempotency-Key" in bad_key.json()["detail"]


def test_a_key_still_running_is_409_and_a_server_error_frees_it(client: TestClient) -> None:
    from marketplace.api.idempotency import request_fingerprint, run_idempotent

    factory = _factory(client)
    ops = make_token(factory, "operator", "ops")
    with factory() as s:
        from marketplace.principals import authenticate

        principal_id = authenticate(s, ops).id  # type: ignore[union-attr]
        s.commit()
    fp = request_fingerprint("POST", "/x", {"a": 1})
    with factory() as s, s.begin():
        s.add(IdempotencyRecord(principal_id=principal_id, key="busy", request_sha256=fp))
    from marketplace.errors import ConflictError

    with pytest.raises(ConflictError, match="still running"):
        run_idempotent(factory, principal_id, "busy", fp, lambda: (200, {}))

    def crash() -> tuple[int, dict[str, Any]]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_idempotent(factory, principal_id, "retry-me", fp, crash)
    assert run_idempotent(factory, principal_id, "retry-me", fp, lambda: (201, {"ok": 1})) == ((201, {"ok": 1}), False)
    assert run_idempotent(factory, principal_id, "retry-me", fp, lambda: (500, {})) == ((201, {"ok": 1}), True)


def _model_folder(settings: Any) -> str:
    """A stand-in model folder under the models folder (a config and a weights file are what is digested)."""
    folder = settings.resolved_models_dir / "tiny-target"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (folder / "model.safetensors").write_bytes(os.urandom(64))
    return folder.name


def test_a_buyer_creates_its_own_campaign_and_the_audit_names_it(client: TestClient) -> None:
    factory = _factory(client)
    settings = client.app.state.settings  # type: ignore[attr-defined]
    settings.ensure_home()
    model = _model_folder(settings)
    buyer = make_token(factory, "buyer", "b-one")
    target = jsonl([{"text": t} for t in distinct_texts(3, max_chars=400)])
    form = {"name": "my-campaign", "budget": "1000.00", "target_model": model}
    r = client.post("/api/v1/campaigns", headers={**bearer(buyer), "Idempotency-Key": "c-1"}, data=form,
                    files={"target_data": ("target.jsonl", target)})
    assert r.status_code == 201, r.text
    assert r.json()["buyer"] == "b-one" and r.json()["n_target_samples"] == 3 and "path" not in r.text
    again = client.post("/api/v1/campaigns", headers={**bearer(buyer), "Idempotency-Key": "c-1"}, data=form,
                        files={"target_data": ("target.jsonl", target)})
    assert again.json() == r.json() and again.headers["idempotent-replayed"] == "true"
    other_buyer = make_token(factory, "buyer", "b-two")
    taken = client.post("/api/v1/campaigns", headers=bearer(other_buyer), data={**form, "name": "My Campaign"},
                        files={"target_data": ("target.jsonl", target)})
    assert taken.status_code == 409 and "my-campaign" not in taken.text  # never names the other's campaign
    for_other = client.post("/api/v1/campaigns", headers=bearer(other_buyer), data={**form, "buyer": "b-one"},
                            files={"target_data": ("target.jsonl", target)})
    assert for_other.status_code == 403
    no_model = client.post("/api/v1/campaigns", headers=bearer(buyer), data={**form, "name": "x2",
                                                                           "target_model": "../models"},
                           files={"target_data": ("target.jsonl", target)})
    assert no_model.status_code == 422 and "tiny-target" in no_model.json()["detail"]
    with factory() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "campaign_created"))
        assert event is not None and event.actor.startswith("buyer b-one (principal ")
        assert event.details["buyer"] == "b-one"


def test_the_operator_starts_a_revaluation_in_the_background(client: TestClient) -> None:
    from tests.support.catalog import make_campaign

    factory = _factory(client)
    with factory() as s, s.begin():
        make_campaign(s, name="camp")
    ops = bearer(make_token(factory, "operator", "ops"))
    r = client.post("/api/v1/campaigns/camp/revalue", json={"period": "2026-11"}, headers=ops)
    assert r.status_code == 202 and r.json()["status"] in ("queued", "running", "completed")
    run_id = r.json()["run_id"]
    client.app.state.revalue_launcher.wait(60)  # type: ignore[attr-defined]
    run = client.get(f"/api/v1/runs/{run_id}", headers=ops).json()
    assert run["status"] == "completed" and run["summary"]["period"] == "2026-11"
    assert run["summary"]["campaign"].startswith("id:")
    status = client.get("/api/v1/campaigns/camp", headers=ops).json()
    assert [x["run_id"] for x in status["revaluations"]] == [run_id] and "pricing_runs" in status["runs"]
    with factory() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "revalue_requested"))
        assert event is not None and event.actor.startswith("operator ops (principal ")
        assert event.details["run_id"] == run_id
