"""Output files (marketplace.outputs): an existing file is replaced atomically, a folder or a symlink at the
output path is a one-line error, a link is never followed, and no ``.partial`` file is left on failure; every
command that writes a file goes through it (exports on both engines, the CLI end to end)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from marketplace.approx.export import export_scores, select_top
from marketplace.cli.app import app
from marketplace.db import LabelSet
from marketplace.errors import ConfigError
from marketplace.outputs import atomic_output, check_output_dir, check_output_file, write_text_atomic
from marketplace.reports.csv_safe import write_csv
from marketplace.valuation.export import export_labels
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name or p.name.endswith(".tmp"))


def _hostile_targets(tmp_path: Path, suffix: str = "csv") -> dict[str, tuple[Path, Path | None]]:
    """name -> (output path with ``suffix``, a file that must stay untouched)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / f"a_folder.{suffix}"
    folder.mkdir()
    link = tmp_path / f"link.{suffix}"
    link.symlink_to(victim)
    broken = tmp_path / f"broken.{suffix}"
    broken.symlink_to(tmp_path / "nowhere")
    dir_link = tmp_path / f"dirlink.{suffix}"
    dir_link.symlink_to(folder)
    blocker = tmp_path / "plainfile"
    blocker.write_text("x")
    return {"folder": (folder, None), "symlink to a file": (link, victim), "broken symlink": (broken, None),
            "symlink to a folder": (dir_link, None), "parent is a file": (blocker / f"out.{suffix}", blocker)}


def test_an_existing_file_is_replaced_atomically_and_failures_leave_nothing(tmp_path: Path) -> None:
    out = tmp_path / "report.csv"
    out.write_text("old")
    write_csv(out, ["a"], [[1]])
    assert out.read_bytes() == b"a\r\n1\r\n"
    assert oct(out.stat().st_mode & 0o777) != "0o600"  # the permissions of a plain open, not mkstemp's
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert out.read_bytes() == b"a\r\n1\r\n" and _leftovers(tmp_path) == []
    assert write_text_atomic(tmp_path / "new" / "deep.html", "<p>") == (tmp_path / "new" / "deep.html").absolute()


@pytest.mark.parametrize("case", ["folder", "symlink to a file", "broken symlink", "symlink to a folder",
                                  "parent is a file"])
def test_folders_links_and_files_in_the_way_are_refused(tmp_path: Path, case: str) -> None:
    path, untouched = _hostile_targets(tmp_path)[case]
    with pytest.raises(ConfigError) as info:
        write_csv(path, ["a"], [[1]])
    assert "\n" not in str(info.value)
    if untouched is not None:
        assert untouched.read_text() in ("precious", "x")
    assert _leftovers(tmp_path) == []
    with pytest.raises(ConfigError):
        write_text_atomic(path, "x")


def test_output_folders(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "file" / "sub")
    assert check_output_dir(tmp_path / "new") == (tmp_path / "new").absolute()
    with pytest.raises(ConfigError, match="symbolic link"):
        check_output_file(_hostile_targets(tmp_path)["symlink to a file"][0])


def _scored(factory: sessionmaker[Session]) -> tuple[int, int]:
    with factory() as s, s.begin():
        camp = make_campaign(s)
        _, xs = make_submission(s, make_provider(s), ["=cmd|'/c calc'!A1", "a plain text"])
        make_score_run(s, camp, {xs[0].id: 1.0, xs[1].id: -2.0})
        label_set = s.scalar(select(LabelSet.id).where(LabelSet.campaign_id == camp.id))
        return camp.id, int(label_set)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_every_export_replaces_or_refuses(session_factory: sessionmaker[Session], tmp_path: Path, fmt: str) -> None:
    cid, label_set = _scored(session_factory)
    writers: dict[str, Callable[[Session, Path], object]] = {
        "scores": lambda s, p: export_scores(s, cid, p),
        "select": lambda s, p: select_top(s, cid, 1.0, p),
        "labels": lambda s, p: export_labels(s, label_set, p),
    }
    for name, write in writers.items():
        out = tmp_path / f"{name}.{fmt}"
        out.write_text("stale")
        with session_factory() as s:
            write(s, out)
        assert out.read_bytes() != b"stale"
    targets_root = tmp_path / "hostile"
    for case, (path, untouched) in _hostile_targets(targets_root, fmt).items():
        for name, write in writers.items():
            with pytest.raises(ConfigError, match="output") as info, session_factory() as s:
                write(s, path)
            assert "\n" not in str(info.value), (case, name)
        if untouched is not None:
            assert untouched.read_text() in ("precious", "x")
    assert _leftovers(targets_root) == [] and _leftovers(tmp_path) == []


def test_cli_commands_refuse_a_folder_or_a_link_in_one_line(mkt_home: Path, tmp_path: Path) -> None:
    from marketplace import runtime

    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    cid, label_set = _scored(runtime.session_factory())
    targets = _hostile_targets(tmp_path)
    for case in ("folder", "symlink to a file"):
        path = targets[case][0]
        for args in (["scores", "export", f"id:{cid}", str(path)], ["select", f"id:{cid}", str(path), "--top", "0.5"],
                     ["labels", "export", str(label_set), str(path)]):
            result = runner.invoke(app, args)
            assert result.exit_code == ConfigError.exit_code, (args, result.output)
            assert "Traceback" not in result.output and "output" in result.stderr
    assert (tmp_path / "victim.txt").read_text() == "precious"
    (tmp_path / "reports_file").write_text("x")
    result = runner.invoke(app, ["report", "campaign", f"id:{cid}", "--out", str(tmp_path / "reports_file")])
    assert result.exit_code == ConfigError.exit_code and "is a file" in result.stderr, result.output
    assert _leftovers(tmp_path) == []
