"""What a name may be (marketplace.names): one validator for providers, campaigns and buyers, applied where
names are created (core, CLI, inbox), inert display of any stored name, and one registered model per
campaign."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from marketplace.campaigns import create_campaign
from marketplace.cli.app import app
from marketplace.db import Campaign, Provider, Submission
from marketplace.errors import ConfigError, ConflictError, ValidationError
from marketplace.inbox import list_provider_folders
from marketplace.ingest import ingest_file, ingest_one_file
from marketplace.money import Money
from marketplace.names import display_name, registry_model_name, rich_safe, validate_name
from tests.support.ingest import distinct_texts, write_jsonl

BAD_NAMES = {
    "empty": "",
    "spaces only": "   ",
    "10k characters": "x" * 10_000,
    "all digits": "12345",
    "explicit id": "id:7",
    "markup": "acme[/]",
    "rich tag": "[bold red]boss[/]",
    "newline": "acme\nINFO fake log line",
    "tab": "a\tb",
    "escape sequence": "acme\x1b[31m",
    "rtl override": "acme\u202etxt.exe",
    "zero width": "ac\u200bme",
    "nul": "ac\x00me",
    "no-break space": "ac\u00a0me",
    "html": "<script>alert(1)</script>",
    "backslash": "a\\b",
}
GOOD_NAMES = ["acme", "Python Docs 2026", "O'Reilly & Sons (EU)", "Café Ünïcode", "x" * 100, "2026-docs", "a.b_c-d"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_valid_names_pass_stripped(name: str) -> None:
    assert validate_name(f"  {name} ") == name


@pytest.mark.parametrize("case", sorted(BAD_NAMES))
@pytest.mark.parametrize("kind", ["provider", "campaign", "buyer"])
def test_invalid_names_are_one_line_errors_saying_what_is_allowed(case: str, kind: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_name(BAD_NAMES[case], kind)
    msg = str(info.value)
    assert "\n" not in msg and "\x1b" not in msg and "\u202e" not in msg and len(msg) < 600
    assert msg.startswith(f"{kind} name") and "letters, digits" in msg


def test_display_is_inert_for_any_stored_text() -> None:
    assert display_name("a\u202eb\nc\x1b") == "'a\\u202eb\\nc\\x1b'"
    assert display_name("y" * 500).endswith("…") and len(display_name("y" * 500)) < 130
    assert rich_safe("[/]boss\u200b") == "\\[/]boss\\u200b"
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(rich_safe("[/] and [bold]x[/bold]\u202e"))  # would raise MarkupError unescaped
    assert "[/] and [bold]x[/bold]\\u202e" in console.export_text()


@pytest.mark.parametrize("case", ["10k characters", "markup", "all digits", "rtl override", "newline"])
def test_ingest_and_campaign_creation_refuse_bad_names_and_write_nothing(
        session_factory: sessionmaker[Session], tmp_path: Path, case: str) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in distinct_texts(3)])
    with pytest.raises(ValidationError, match="provider name") as info, session_factory() as s, s.begin():
        ingest_file(s, path, BAD_NAMES[case])
    assert "\n" not in str(info.value)
    result = ingest_one_file(session_factory, path, BAD_NAMES[case])
    assert result.status == "rejected" and result.reason_code == "ValidationError"

    class Rec:
        text, prompt_chars, content_hash = "t", None, "0" * 64

    with pytest.raises(ValidationError, match="campaign name"), session_factory() as s, s.begin():
        create_campaign(s, name=BAD_NAMES[case], target_model_path="m", target_model_digest="d",
                        target_data_path="t", target_records=[Rec()], budget=Money(100, "EUR"))
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Provider)) == 0
        assert s.scalar(select(func.count()).select_from(Submission)) == 0
        assert s.scalar(select(func.count()).select_from(Campaign)) == 0


def test_each_campaign_has_its_own_registered_model(session_factory: sessionmaker[Session]) -> None:
    class Rec:
        text, prompt_chars, content_hash = "t", None, "0" * 64

    def create(name: str) -> None:
        with session_factory() as s, s.begin():
            create_campaign(s, name=name, target_model_path="m", target_model_digest="d", target_data_path="t",
                            target_records=[Rec()], budget=Money(100, "EUR"))

    create("Camp One")
    for clash in ("camp-one", "CAMP_ONE!", "camp  one", "(camp) one"):
        assert registry_model_name(clash) == registry_model_name("Camp One")
        with pytest.raises(ConflictError, match=r"maps to the registered model alinfik-camp-one of campaign "
                                                r"'Camp One'") as info:
            create(clash)
        assert "\n" not in str(info.value)
    create("Camp Two")
    with session_factory() as s:
        names = s.scalars(select(Campaign.name).order_by(Campaign.id)).all()
    assert names == ["Camp One", "Camp Two"]
    assert len({registry_model_name(n) for n in names}) == len(names)


# ---------------------------------------------------------------------------------------------------
# The inbox (manifest and folder names)
# ---------------------------------------------------------------------------------------------------
def _inbox(tmp_path: Path, manifest: str | bytes | None, folders: tuple[str, ...] = ("acme", "zeta")) -> Path:
    inbox = tmp_path / "inbox"
    for f in folders:
        (inbox / f).mkdir(parents=True)
    if manifest is not None:
        target = inbox / "manifest.json"
        target.write_bytes(manifest if isinstance(manifest, bytes) else manifest.encode())
    return inbox


@pytest.mark.parametrize("manifest, match", [
    ("{not json", "is not valid JSON"),
    (b"\xff\xfe{}", "is not UTF-8"),
    ("[1, 2]", "must be a JSON object"),
    ('{"providers": "acme"}', '"providers" must be a list'),
    ('{"providers": [42]}', r"providers\[0\] must be a name"),
    ('{"providers": [{"name": null}]}', r"providers\[0\] must be a name"),
    ('{"providers": ["acme", "acme"]}', "listed twice"),
    ('{"providers": ["acme[/]"]}', "provider name"),
    ('{"providers": ["' + "x" * 10_000 + '"]}', "at most 100"),
    ('{"providers": ["7"]}', "reads as an id"),
])
def test_a_malformed_manifest_is_a_one_line_error(tmp_path: Path, manifest: str | bytes, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        list_provider_folders(_inbox(tmp_path, manifest))
    assert "\n" not in str(info.value) and len(str(info.value)) < 700


@pytest.mark.parametrize("folder", ["123", "bad[/]", "id:3", "ac\u200bme"])
def test_a_folder_that_is_no_valid_provider_name_is_refused(tmp_path: Path, folder: str) -> None:
    with pytest.raises(ConfigError, match="inbox folder"):
        list_provider_folders(_inbox(tmp_path, None, ("acme", folder)))


def test_a_good_manifest_orders_the_providers(tmp_path: Path) -> None:
    inbox = _inbox(tmp_path, json.dumps({"providers": [{"name": "zeta"}, "gone"]}))
    assert [n for n, _ in list_provider_folders(inbox)] == ["zeta", "acme"]


# ---------------------------------------------------------------------------------------------------
# The CLI: a bad name is a one-line error before any work; stored hostile names never crash a listing
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["markup", "rich tag", "10k characters", "all digits", "rtl override"])
def test_cli_ingest_refuses_a_bad_provider_name_before_any_work(mkt_home: Path, tmp_path: Path, case: str) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in distinct_texts(3)])
    result = CliRunner().invoke(app, ["ingest", str(path), "--provider", BAD_NAMES[case]])
    assert result.exit_code == ValidationError.exit_code, result.output
    assert "Traceback" not in result.output and "provider name" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3  # one message (the console may wrap it)
    assert not (mkt_home / "marketplace.db").exists() or _no_submissions(mkt_home)


def _no_submissions(home: Path) -> bool:
    from marketplace.db import create_db_engine

    engine = create_db_engine(f"sqlite:///{home / 'marketplace.db'}")
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Submission)).scalar_one() == 0
    finally:
        engine.dispose()


def test_hostile_names_stored_before_the_rule_never_crash_a_listing(mkt_home: Path) -> None:
    """Rows written before names were validated (or behind the application's back) are shown inert."""
    from marketplace import runtime
    from tests.support.catalog import make_campaign, make_provider

    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    hostile = "evil[/]\u202e[bold]boss[/bold]\nnext"
    with runtime.session_factory()() as s, s.begin():
        make_campaign(s, hostile)
        make_provider(s, hostile)
    for args in (["campaign", "list"], ["campaign", "show", "id:1"], ["ledger", "audit"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert "Traceback" not in result.output and "\u202e" not in result.output
    assert "evil[/]" in CliRunner().invoke(app, ["campaign", "list"]).stdout


def test_cli_revalue_refuses_a_malformed_inbox_before_prefect_starts(mkt_home: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from marketplace.cli import revalue_cmd

    def no_flow(*args: object, **kwargs: object) -> None:
        raise AssertionError("the flow (and Prefect) started although the inbox is malformed")

    monkeypatch.setattr(revalue_cmd, "run_flow", no_flow)
    inbox = _inbox(tmp_path, '{"providers": [')
    result = CliRunner().invoke(app, ["revalue", "any-campaign", "--inbox", str(inbox), "--device", "cpu"])
    assert result.exit_code == ConfigError.exit_code, result.output
    assert "is not valid JSON" in result.stderr and "Traceback" not in result.output
