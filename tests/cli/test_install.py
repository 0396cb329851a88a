"""Installing as README says: apt never pulls recommended packages (it once pulled a GUI), and the
project's licence is the SPDX string setuptools no longer warns about."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_apt_get_installs_without_recommends() -> None:
    script = (ROOT / "infra" / "bootstrap.sh").read_text(encoding="utf-8")
    installs = [line for line in script.splitlines() if re.search(r"apt-get\s+install", line)]
    assert installs and all("--no-install-recommends" in line for line in installs)


def test_every_bootstrap_step_says_how_long_it_takes() -> None:
    script = (ROOT / "infra" / "bootstrap.sh").read_text(encoding="utf-8")
    steps = [line for line in script.splitlines() if line.strip().startswith('log "installing')
             or line.strip().startswith('log "creating')]
    assert len(steps) >= 4 and all(re.search(r"usually [0-9]", line) for line in steps), steps


def test_license_is_an_spdx_string() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"


def test_readme_commands_run_as_printed() -> None:
    """Nothing is on PATH after bootstrap: every command in the README's shell blocks names this checkout's
    scripts (``.venv/bin/...``), the bootstrap script, or sets a variable first."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    assert blocks
    bare = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            words = [w for w in line.split("#")[0].split() if "=" not in w or w.startswith("-")]
            if words and words[0] in {"marketplace", "mlflow", "prefect", "python", "pytest"}:
                bare.append(line)
    assert not bare, bare
