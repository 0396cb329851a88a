"""The demo's display: stages start and finish on the pipeline's own log records and Prefect's flow starts,
bars move with the records' numbers, INFO leaves the terminal for the log file (warnings stay), a failing
stage is marked as failed; and every record it listens to still exists, word for word, in its module."""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import logging
from pathlib import Path

import pytest
from rich.console import Console

from marketplace.cli.demo_progress import FLOW_STAGES, SIGNALS, STAGES, DemoProgress


@pytest.mark.parametrize("signal", SIGNALS, ids=lambda s: s.msg[:40])
def test_every_signal_is_logged_by_its_module(signal: object) -> None:
    module = importlib.import_module(signal.logger)  # type: ignore[attr-defined]
    tree = ast.parse(inspect.getsource(module))
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert signal.msg in strings, signal  # type: ignore[attr-defined]
    assert signal.stage in STAGES  # type: ignore[attr-defined]


def test_every_flow_stage_is_a_flow() -> None:
    for flow_name in FLOW_STAGES:
        module = importlib.import_module(f"flows.{flow_name}")
        assert getattr(module, flow_name).name == flow_name


def _flow_starts(shown: DemoProgress, flow: str) -> None:
    """Prefect's record of a subflow start, handed to the display as Prefect's logger would (without
    Prefect's API handler, which wants a real flow run)."""
    shown.handle(logging.LogRecord("prefect.flow_runs", logging.INFO, __file__, 0,
                                   f"Beginning subflow run 'calm-fox' for flow '{flow}'", None, None))


def _display(tmp_path: Path) -> tuple[DemoProgress, io.StringIO]:
    out = io.StringIO()
    return DemoProgress(Console(file=out, width=200), tmp_path / "logs" / "demo.log"), out


def test_stages_and_bars_follow_the_records(tmp_path: Path) -> None:
    shown, out = _display(tmp_path)
    logging.getLogger("marketplace").setLevel(logging.INFO)
    with shown:
        shown.begin("model", "a small GPT-2")
        logging.getLogger("marketplace.valuation.demo_model").info(
            "demo model step %d/%d: train loss %.3f", 51, 400, 7.1)
        task = shown.progress.tasks[-1]
        assert (task.completed, task.total) == (51, 400)
        shown.finish("built")
        shown.expected["ingest"] = 3
        for _ in range(3):
            _flow_starts(shown, "ingest")
        assert shown.current == "ingest" and shown.progress.tasks[-1].completed == 2
        _flow_starts(shown, "label")
        runs = logging.getLogger("marketplace.valuation.runs")
        runs.info("label run %s: %d samples in %d shard(s), %d target samples, %d checkpoint(s)%s",
                  "k", 600, 3, 141, 1, "")
        grads = logging.getLogger("marketplace.valuation.gradients")
        grads.info("train shard %d/%d of checkpoint %d: %d samples in %.1f s (%.1f samples/s)",
                   1, 3, 0, 200, 1.0, 200.0)
        assert (shown.progress.tasks[-1].completed, shown.progress.tasks[-1].total) == (1, 3)
        _flow_starts(shown, "score")
        # embeddings while scoring move no other stage (they are the train stage's bar only while training)
        logging.getLogger("marketplace.approx.embedding_store").info("embedded %d/%d new texts", 10, 20)
        logging.getLogger("marketplace.approx.scoring").info(
            "score run %d: %d scores written for samples %d..%d; %d/%d done", 1, 50, 1, 50, 50, 200)
        assert shown.current == "score" and shown.progress.tasks[-1].completed == 50
        logging.getLogger("marketplace.somewhere").info("a detail for the log file only")
        logging.getLogger("marketplace.somewhere").warning("a warning the user must see")
    text = out.getvalue()
    assert [line.split()[1] for line in text.splitlines() if line.startswith("  ✓")] == [
        "model", "ingest", "label", "score"]
    assert "▸ target model: a small GPT-2" in text and "train" not in shown.timings
    log_text = (tmp_path / "logs" / "demo.log").read_text(encoding="utf-8")
    assert "a detail for the log file only" in log_text and "a warning the user must see" in log_text
    assert not any(isinstance(f, type(shown._quiet)) for h in logging.getLogger().handlers for f in h.filters)


def test_a_failing_stage_says_so(tmp_path: Path) -> None:
    shown, out = _display(tmp_path)
    with pytest.raises(RuntimeError), shown:
        shown.begin("corpora")
        raise RuntimeError("boom")
    assert "✗ corpora stopped" in out.getvalue() and "✓" not in out.getvalue()


def test_without_a_terminal_each_quarter_is_a_line_with_the_time_left(tmp_path: Path) -> None:
    shown, out = _display(tmp_path)  # a StringIO console is no terminal: no bars
    with shown:
        shown.begin("model")
        step = logging.getLogger("marketplace.valuation.demo_model")
        for done in (1, 51, 101, 151, 201, 251, 301, 351, 400):
            step.info("demo model step %d/%d: train loss %.3f", done, 400, 5.0)
    lines = [line.strip() for line in out.getvalue().splitlines() if line.startswith("    model")]
    assert [line.split()[1] for line in lines] == ["25%", "50%", "75%"]
    assert all(line.endswith("left") for line in lines)
