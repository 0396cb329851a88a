"""Every CSV the product writes is formula-safe, and its numeric columns stay numbers.

The exports (``scores export``, ``select``, ``labels export``, ``active-label --out``) go through the one
writer of ``marketplace/reports/csv_safe.py``: hostile texts and provider names come back prefixed
with a quote, negative scores parse as floats.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from marketplace.approx.export import export_scores, select_top
from marketplace.cli.app import app
from marketplace.db import Label, LabelSet, Score
from marketplace.reports.csv_safe import FORMULA_PREFIXES, sanitize_cell, write_csv
from marketplace.valuation.export import export_labels
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission

runner = CliRunner()

HOSTILE = ['=HYPERLINK("http://evil.example","click")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1",
           "\n=1+1", "  =1+1", "|calc", "\uff1dSUM(A1)", "plain text, with a comma"]
HOSTILE_PROVIDER = "=cmd|' /C calc'!A0"
SCORES = [-0.3, 0.25, -1.5e-7, 2.0, -4.0, 0.0, 1.0, -0.01, 3.5, -2.25, 0.5]


def _seed(factory: sessionmaker[Session]) -> tuple[str, int]:
    with factory() as s, s.begin():
        camp = make_campaign(s, "camp-csv")
        _, samples = make_submission(s, make_provider(s, HOSTILE_PROVIDER), HOSTILE)
        run = make_score_run(s, camp, {x.id: v for x, v in zip(samples, SCORES, strict=True)})
        s.execute(update(Score).where(Score.score_run_id == run.id).values(score_std=0.1))
        label_set = s.scalar(select(LabelSet).where(LabelSet.campaign_id == camp.id))
        assert label_set is not None
        s.add_all(Label(label_set_id=label_set.id, sample_id=x.id, score=v)
                  for x, v in zip(samples[:5], SCORES[:5], strict=True))
        return camp.name, label_set.id


def _check(path: Path, numeric: tuple[str, ...], texts: tuple[str, ...]) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    for row in rows:
        for name, cell in row.items():
            if name in numeric:
                float(cell)  # a number, never a quoted text such as "'-0.3"
            else:
                assert not cell.lstrip().startswith(FORMULA_PREFIXES), (name, cell)
                assert not cell.startswith(FORMULA_PREFIXES), (name, cell)
    for name in texts:
        for row in rows:
            assert row[name].startswith("'") or row[name] == "plain text, with a comma"
    return rows


def _negative(rows: list[dict[str, str]], column: str) -> None:
    assert any(float(r[column]) < 0 for r in rows)


def test_every_csv_command_is_formula_safe_and_keeps_numbers(mkt_home: Path, tmp_path: Path) -> None:
    from marketplace import runtime

    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    campaign, label_set = _seed(runtime.session_factory())
    out = tmp_path / "out"
    for args in (["scores", "export", campaign, str(out / "scores.csv")],
                 ["select", campaign, str(out / "top.csv"), "--top", "1.0"],
                 ["labels", "export", str(label_set), str(out / "labels.csv")],
                 ["active-label", campaign, "--n", "20", "--out", str(out / "active.csv")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    scores = _check(out / "scores.csv", ("sample_id", "submission_id", "score", "score_std"), ("text", "provider"))
    _negative(scores, "score")
    assert "'" + HOSTILE[0] in [r["text"] for r in scores]
    top = _check(out / "top.csv", ("sample_id", "score"), ("text", "provider"))
    _negative(top, "score")
    labels = _check(out / "labels.csv", ("sample_id", "provider_id", "score"), ("text", "provider"))
    _negative(labels, "score")
    active = _check(out / "active.csv", ("sample_id", "score", "spread"), ("provider",))
    _negative(active, "score")


def test_core_exports_on_both_engines(session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    from marketplace.campaigns import get_campaign

    campaign, label_set = _seed(session_factory)
    with session_factory() as s:
        cid = get_campaign(s, campaign).id
        export_scores(s, cid, tmp_path / "scores.csv", batch_rows=3)  # several appended batches
        select_top(s, cid, 0.5, tmp_path / "top.csv", batch_rows=2)
        export_labels(s, label_set, tmp_path / "labels.csv")
    scores = _check(tmp_path / "scores.csv", ("sample_id", "submission_id", "score", "score_std"),
                    ("text", "provider"))
    assert sorted(float(r["score"]) for r in scores) == sorted(SCORES)
    _check(tmp_path / "top.csv", ("sample_id", "score"), ("text", "provider"))
    _negative(_check(tmp_path / "labels.csv", ("sample_id", "provider_id", "score"), ("text", "provider")), "score")


@pytest.mark.parametrize("value", [-0.3, -5, 0, 1.5, True])
def test_numbers_stay_numbers(value: object, tmp_path: Path) -> None:
    from decimal import Decimal

    import numpy as np

    for v in (value, np.float32(-0.5), np.int64(-3), Decimal("-1.25")):
        assert sanitize_cell(v) is v
    assert sanitize_cell(float("nan")) == "" and sanitize_cell(None) == ""
    assert sanitize_cell("-0.3") == "'-0.3"  # a *string* that looks like a number is still text
    path = write_csv(tmp_path / "x.csv", ["a"], [[value]])
    assert path.read_text(encoding="utf-8").splitlines()[1] == str(value)
