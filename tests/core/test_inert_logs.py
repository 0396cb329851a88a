"""Log lines that user text cannot forge (marketplace.names.InertLogFormatter, installed by the CLI)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from marketplace.names import LOG_FORMAT, InertLogFormatter


def _line(msg: str, *args: object, exc: bool = False) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(InertLogFormatter(LOG_FORMAT))
    log = logging.getLogger("test.inert")
    log.handlers, log.propagate, log.level = [handler], False, logging.INFO
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception(msg, *args)
    else:
        log.info(msg, *args)
    return stream.getvalue()


def test_a_name_cannot_start_a_line_recolour_a_terminal_or_reorder_text() -> None:
    hostile = "acme\n2026-12-02 00:00:00 CRITICAL marketplace: ledger verify failed\r\x1b[31mred\u202etxt.exe\u200b"
    out = _line("ingested %s for provider %s", 3, hostile)
    assert out.count("\n") == 1 and out.endswith("\n")  # one line, whatever the name holds
    for raw in ("\r", "\x1b", "\u202e", "\u200b"):
        assert raw not in out
    assert "\\n2026-12-02" in out and "\\x1b[31m" in out and "\\u202e" in out and "\\u200b" in out
    assert "ingested 3 for provider acme" in out


def test_plain_messages_are_unchanged_and_tracebacks_keep_their_lines() -> None:
    assert _line("score run %d: %s", 7, "Café ünïcode, tabs\tare escaped").rstrip("\n").endswith(
        "score run 7: Café ünïcode, tabs\\tare escaped")
    out = _line("failed for %s", "x\ny", exc=True)
    assert "failed for x\\ny" in out and "Traceback (most recent call last):" in out and out.count("\n") > 2


def test_the_cli_installs_it_on_the_root_handlers(mkt_home: Path) -> None:
    from typer.testing import CliRunner

    from marketplace.cli.app import app

    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        root.handlers = []
        CliRunner().invoke(app, ["status", "--json"])  # any command runs the root callback
        assert root.handlers and all(isinstance(h.formatter, InertLogFormatter) for h in root.handlers)
    finally:
        root.handlers = saved
