"""No command shows a credential: status, database errors and MLflow URIs go through
``marketplace/settings.py:redact_secrets``."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from marketplace import runtime
from marketplace.cli.app import app
from marketplace.settings import redact_secrets, redact_url

runner = CliRunner()
SECRET = "hunter2-s3cr@t"


def _with_password(url: str) -> str:
    scheme, rest = url.split("://", 1)
    userinfo, host = rest.split("@", 1) if "@" in rest else ("postgres", rest)
    return f"{scheme}://{userinfo.split(':', 1)[0]}:{quote(SECRET, safe='')}@{host}"


@pytest.mark.parametrize("text, shown", [
    ("postgresql+psycopg://alice:pw@db:5432/mkt", "postgresql+psycopg://alice:***@db:5432/mkt"),
    (f"postgresql://alice:{SECRET}@db/mkt", "postgresql://alice:***@db/mkt"),
    ("http://bob:tok@mlflow:5000/?token=abc&x=1", "http://bob:***@mlflow:5000/?token=***&x=1"),
    ("host=db password=pw dbname=mkt", "host=db password=*** dbname=mkt"),
    ("error at 'mysql://u:p@h/d' and https://t:k@x.io", "error at 'mysql://u:***@h/d' and https://t:***@x.io"),
    ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
    ("postgresql://alice@db/mkt", "postgresql://alice@db/mkt"),
])
def test_redaction(text: str, shown: str) -> None:
    assert redact_secrets(text) == shown
    assert redact_url(None) is None


def test_status_json_shows_no_password(db_url: str, mkt_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _with_password(db_url) if db_url.startswith("postgresql") else db_url
    monkeypatch.setenv("MKT_DATABASE_URL", url)
    monkeypatch.setenv("MKT_MLFLOW_TRACKING_URI", f"https://bob:{SECRET}@mlflow.example:5000")
    runtime.reset()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    for args in (["status", "--json"], ["status"], ["db", "upgrade", "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "hunter2" not in result.output and "s3cr" not in result.output
    data = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert data["store"]["mlflow"] == "https://bob:***@mlflow.example:5000"
    if db_url.startswith("postgresql"):
        assert ":***@" in data["store"]["database"]


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://alice:{SECRET}@127.0.0.1:1/mkt",  # nothing listens on port 1
    f"postgresql+psycopg://alice:{SECRET}@127.0.0.1:5432:x/mkt",  # not a URL SQLAlchemy can parse
])
@pytest.mark.parametrize("args", [["status", "--json"], ["db", "upgrade"], ["campaign", "list"]])
def test_unreachable_database_is_one_line_without_password(url: str, args: list[str], mkt_home: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKT_DATABASE_URL", url)
    runtime.reset()
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "hunter2" not in result.output and "s3cr" not in result.output
    assert "alice:***@127.0.0.1" in result.output and "MKT_DATABASE_URL" in result.output
    assert "Traceback" not in result.output
