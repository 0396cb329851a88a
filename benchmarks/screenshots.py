"""Screenshots of a provider statement and the buyer report, as a reader sees them in a browser.

    MKT_HOME=/tmp/demo .venv/bin/marketplace demo --small          # a demo home first
    .venv/bin/python benchmarks/screenshots.py --home /tmp/demo --small
    .venv/bin/python benchmarks/screenshots.py --home /tmp/demo --provider pydocs-press --provider copycat

The reports are rendered again from the demo's database with the code of this checkout (into a temporary
folder), then headless Chromium (Debian's ``chromium``; ``bash infra/bootstrap.sh``
installs it) saves each page as a PNG in ``benchmarks/results/``. The pages are self-contained (inline
CSS, SVG and PNG): Chromium runs with networking off and needs nothing but the file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, add_demo_home_args

RESULTS = ROOT / "benchmarks" / "results"
WIDTH = 1280


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("headless Chromium is not installed: run `bash infra/bootstrap.sh` as root "
             "(Debian package chromium)")


def screenshot(html: Path, png: Path, height: int) -> Path:
    """``html`` as a ``WIDTH`` x ``height`` PNG (headless, no network, no GPU, no sandbox for root)."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mkt-chromium-") as profile:
        cmd = [_chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
               "--force-device-scale-factor=1", "--disable-background-networking", "--no-first-run",
               "--proxy-server=127.0.0.1:9", f"--user-data-dir={profile}", f"--window-size={WIDTH},{height}",
               f"--screenshot={png}", html.resolve().as_uri()]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_demo_home_args(ap)
    ap.add_argument("--small", action="store_true", help="The --small demo (its store is HOME/demo-small).")
    ap.add_argument("--provider", action="append", default=None,
                    help="Provider whose statement to capture (repeatable; default: pydocs-press and copycat).")
    ap.add_argument("--period", default=None, help="Period (default: the latest priced).")
    ap.add_argument("--height", type=int, default=2600, help="Page height in pixels.")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.home is None:
        sys.exit("--home is required: the MKT_HOME of a finished `marketplace demo`")
    home = args.home / "demo-small" if args.small else args.home
    campaign = args.campaign + ("-small" if args.small and not args.campaign.endswith("-small") else "")
    os.environ["MKT_HOME"] = str(home)

    from marketplace import runtime
    from marketplace.reports import produce_buyer_report, produce_statement

    runtime.require_store()
    factory = runtime.session_factory()
    providers = args.provider or ["pydocs-press", "copycat"]
    with tempfile.TemporaryDirectory(prefix="mkt-reports-") as tmp, factory() as session:
        rep, files = produce_buyer_report(session, campaign, args.period, Path(tmp))
        shots = [screenshot(files["html"], args.out / "screenshot_buyer_report.png", args.height)]
        for name in providers:
            _statement, st_files = produce_statement(session, name, rep.period, Path(tmp))
            shots.append(screenshot(st_files["html"], args.out / f"screenshot_statement_{name}.png", args.height))
    for png in shots:
        print(png.relative_to(ROOT) if png.is_relative_to(ROOT) else png)


if __name__ == "__main__":
    main()
