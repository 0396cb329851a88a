"""What every benchmark script does before it imports the project.

- Put the repository root on ``sys.path``, so a script runs from a checkout without an install.
- Set the project's offline switches (``marketplace.runtime.OFFLINE_ENV``, the one list).
- ``add_demo_home_args`` adds the ``--home`` / ``--campaign`` options of the scripts that measure a
  finished ``marketplace demo``.
- ``publish_report`` prints a results table and writes it to its file under ``benchmarks/results``.

Each script imports it first: ``from _common import ROOT`` (a script's own folder is on ``sys.path``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from marketplace.runtime import apply_offline_env  # noqa: E402  (needs ROOT on sys.path)

apply_offline_env()

__all__ = ["ROOT", "add_demo_home_args", "publish_report"]


def add_demo_home_args(ap: argparse.ArgumentParser) -> None:
    """``--home`` (the MKT_HOME of a finished `marketplace demo`) and ``--campaign``."""
    ap.add_argument("--home", type=Path, default=None, help="MKT_HOME of a finished `marketplace demo`.")
    ap.add_argument("--campaign", default="demo-python-docs")


def publish_report(lines: list[str], out: Path) -> str:
    """Print the report (Markdown lines) and write it to ``out`` (its folder created); returns the text."""
    text = "\n".join(lines)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text
