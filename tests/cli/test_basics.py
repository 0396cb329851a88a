"""The console script: --help everywhere, --json parses, status on an empty store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from marketplace.cli.app import app

runner = CliRunner()


def _all_command_paths() -> list[list[str]]:
    root = get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: object, prefix: list[str]) -> None:
        # Typer bundles its own click, so duck-type groups rather than isinstance(click.Group).
        paths.append(prefix)
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, [*prefix, name])

    walk(root, [])
    assert len(paths) > 5, "command tree walk found no subcommands"
    return paths


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p) or "marketplace")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_status_json_on_empty_store(mkt_home: Path) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0  # status itself never creates a store
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["catalog"]["samples"] == 0
    assert data["store"]["home"] == str(mkt_home.resolve())
    assert (mkt_home / "marketplace.db").exists()


def test_db_downgrade_and_upgrade(mkt_home: Path) -> None:
    up = runner.invoke(app, ["db", "upgrade", "--json"])
    assert up.exit_code == 0, up.output
    head = json.loads(up.stdout)["revision"]
    assert head and "marketplace.db" in json.loads(up.stdout)["database"]
    down = runner.invoke(app, ["db", "downgrade", "base"])
    assert down.exit_code == 0 and "at revision None" in down.output
    again = runner.invoke(app, ["db", "upgrade", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["revision"] == head


def test_each_cli_module_is_named_by_the_command_or_group_it_holds() -> None:
    """``marketplace/cli/<name>_cmd.py`` registers the command or group ``<name>`` (underscores as dashes)
    and nothing else, so ``marketplace X --help`` leads to ``cli/X_cmd.py``."""
    import importlib

    import typer

    from marketplace.cli.app import COMMAND_MODULES

    for module in COMMAND_MODULES:
        probe = typer.Typer()
        importlib.import_module(module).register(probe)
        names = [c.name for c in probe.registered_commands] + [g.name for g in probe.registered_groups]
        expected = module.rsplit(".", 1)[1].removesuffix("_cmd").replace("_", "-")
        assert names == [expected], (module, names)


def test_error_hints_name_the_command_as_it_runs_here(mkt_home: Path) -> None:
    """A hint in an error ("run `marketplace label` first") spells the CLI as this installation runs it."""
    from marketplace.cli.common import runnable_hints, venv_command

    prog = venv_command("marketplace")
    assert Path(prog).is_file() or (Path.cwd() / prog).is_file()
    hint = runnable_hints("no label set; run `marketplace label X` first")
    assert hint == f"no label set; run `{prog} label X` first"
    result = CliRunner().invoke(app, ["score", "no-such-campaign"])
    assert result.exit_code != 0 and "`marketplace " not in result.output
    assert f"`{prog} campaign create`" in result.output
    # the flow stopped on a marketplace error: the CLI's one line says it, Prefect's run logs do not repeat it
    assert "Encountered exception" not in result.output and "Traceback" not in result.output
