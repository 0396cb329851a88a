"""Screenshots of the web portal's pages, as each role sees them in a real browser.

    .venv/bin/python benchmarks/portal_screenshots.py                 # PNGs into benchmarks/results/portal/
    .venv/bin/python benchmarks/portal_screenshots.py --out /tmp/shots

Builds a small real market in a temporary ``MKT_HOME`` (SQLite): three providers whose files of Python's own
documentation (``pydoc_data.topics``) go through ``ingest_one_file`` (a copycat's file repeats part of
another's, so its records are "already in the market"), a buyer's campaign made by ``create_campaign`` on a
stand-in model folder (never loaded), one score run and a priced period (``run_pricing``). The score run's
rows come from the test suite's builder ``tests/support/catalog.py:make_score_run`` with scores from
``tests/support/approx.py:proxy_label`` (a known function of the text), because labeling and training would
take minutes and are not what the pictures show. Principals for a provider, the buyer and an operator.

Then it serves the app (the API with the portal, under uvicorn on a free loopback port) and drives Debian's
headless Chromium with Selenium through a 1200x900 window: it signs in as the provider, uploads a file with
two bad records through the portal's form, and saves each page: sign-in, provider dashboard, the submission
with its quarantine reasons, the statement (top and plots), buyer dashboard, the campaign page (selection
download, value by provider; then the top samples) and the operator page. Each PNG is reduced to a 256-colour
palette when that keeps it under 200 KB. Prints a table of the files and their sizes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import ROOT, publish_report

RESULTS = ROOT / "benchmarks" / "results" / "portal"
PERIOD = "2026-11"
WIDTH, HEIGHT = 1200, 900
MAX_PNG_BYTES = 200 * 1024


@dataclass
class Market:
    tokens: dict[str, str]
    campaign_id: int
    settings: Any


def _paragraphs() -> list[str]:
    """Paragraphs of Python's documentation topics, 80-600 characters, in a fixed order."""
    from marketplace.corpus.sources.pydocs import pydoc_topics

    topics = pydoc_topics()
    out: list[str] = []
    for key in sorted(topics):
        for para in topics[key].split("\n\n"):
            text = " ".join(para.split())
            if 80 <= len(text) <= 600 and text not in out:
                out.append(text)
    return out


def _jsonl(texts: list[str]) -> bytes:
    return "".join(json.dumps({"text": t}) + "\n" for t in texts).encode("utf-8")


def build_market(home: Path) -> Market:
    """The small market of the module docstring, in a fresh store under ``home``."""
    from sqlalchemy import select

    from marketplace import runtime
    from marketplace.campaigns import create_campaign
    from marketplace.db import Sample
    from marketplace.ingest import IngestOptions, ingest_one_file, read_normalised_records
    from marketplace.money import Money
    from marketplace.pricing import PricingPolicy
    from marketplace.pricing.runner import run_pricing
    from marketplace.principals import create_principal
    from marketplace.settings import get_settings
    from marketplace.valuation import digest_model_dir
    from tests.support.approx import proxy_label
    from tests.support.catalog import make_score_run

    settings = get_settings(home=home, database_url=f"sqlite:///{home / 'marketplace.db'}")
    settings.ensure_home()
    factory = runtime.session_factory(settings)
    limits, dedup = runtime.ingest_parameters(settings=settings)
    options = IngestOptions(limits=limits, dedup_params=dedup)
    paras = _paragraphs()
    rng = random.Random(7)
    rng.shuffle(paras)
    files = {"pydocs-press": paras[:60], "docs-digest": paras[60:100], "copycat": paras[:25] + paras[100:110]}
    work = home / "incoming"
    work.mkdir(parents=True, exist_ok=True)
    for provider, texts in files.items():
        path = work / f"{provider}-2026-11.jsonl"
        path.write_bytes(_jsonl(texts))
        result = ingest_one_file(factory, path, provider, options, actor="portal screenshots")
        assert result.status == "accepted", result
    model = settings.resolved_models_dir / "stand-in-model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (model / "model.safetensors").write_bytes(os.urandom(1024))
    target = work / "target.jsonl"
    target.write_bytes(_jsonl(paras[200:230]))
    with factory() as s, s.begin():
        campaign = create_campaign(
            s, name="python-docs-helper", target_model_path=str(model), target_model_digest=digest_model_dir(model),
            target_data_path=str(target), target_records=read_normalised_records(target, limits=limits),
            budget=Money(250_000, "EUR"), audit_threshold=0.3, actor="portal screenshots", buyer="acme-labs")
        scores = {sid: proxy_label(text) for sid, text in s.execute(select(Sample.id, Sample.text))}
        make_score_run(s, campaign, scores)
        campaign_id = campaign.id
    # the stand-in model folder is never loaded, so the period is priced on the scores alone
    run_pricing(factory, campaign_id, PERIOD, PricingPolicy(screen="none"), actor="portal screenshots")
    with factory() as s, s.begin():
        tokens = {name: create_principal(s, role, name, actor="portal screenshots").token
                  for role, name in (("provider", "pydocs-press"), ("buyer", "acme-labs"), ("operator", "ops"))}
    return Market(tokens, campaign_id, settings)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(settings: Any) -> Iterator[str]:
    """The API app with the portal under uvicorn in a thread; yields the base URL."""
    import uvicorn

    from marketplace.api import create_app

    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars",
                f"--window-size={WIDTH},{HEIGHT}", "--force-device-scale-factor=1", "--no-first-run",
                "--disable-background-networking"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    # the page area itself is WIDTH x HEIGHT (the window size would include the headless browser's frame)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    try:
        yield driver
    finally:
        driver.quit()


def save_png(driver: Any, path: Path) -> int:
    """The window as a PNG at ``path`` (a 256-colour palette when the full-colour one is over the limit);
    returns its size in bytes."""
    from PIL import Image

    raw = driver.get_screenshot_as_png()
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(raw) > MAX_PNG_BYTES:
        image = Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        buf = io.BytesIO()
        image.save(buf, format="PNG", optimize=True)
        raw = buf.getvalue()
    path.write_bytes(raw)
    return len(raw)


def take(base: str, market: Market, out: Path, upload_dir: Path) -> list[tuple[str, str, int]]:
    """Drive the portal and save every page; returns (file, what it shows, bytes)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    shots: list[tuple[str, str, int]] = []

    def shot(name: str, what: str) -> None:
        shots.append((name, what, save_png(driver, out / name)))

    def scroll_to(text: str) -> None:
        heading = driver.find_element(By.XPATH, f"//h2[contains(., {json.dumps(text)})]")
        driver.execute_script("arguments[0].scrollIntoView(); window.scrollBy(0, -12);", heading)

    def sign_in(who: str) -> None:
        driver.delete_all_cookies()
        driver.get(f"{base}/portal/sign-in")
        driver.find_element(By.ID, "token").send_keys(market.tokens[who])
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        WebDriverWait(driver, 15).until(lambda d: "/sign-in" not in d.current_url)

    with browser() as driver:
        driver.get(f"{base}/")
        shot("01_sign_in.png", "the sign-in form (an API token)")
        sign_in("pydocs-press")
        upload = upload_dir / "pydocs-press-late-2026-11.jsonl"
        texts = _paragraphs()[300:318]
        upload.write_bytes(_jsonl(texts[:9]) + b'{"text": ""}\n' + _jsonl(texts[9:15]) + b'{"title": "no text"}\n'
                           + _jsonl(texts[15:]))
        driver.find_element(By.ID, "file").send_keys(str(upload))
        driver.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
        WebDriverWait(driver, 30).until(lambda d: "/portal/provider/submissions/" in d.current_url)
        shot("03_submission_quarantine.png", "an upload through the form: accepted, two records quarantined")
        driver.get(f"{base}/portal/provider")
        shot("02_provider_dashboard.png", "provider: balance, statements, submissions, upload form")
        driver.find_element(By.LINK_TEXT, f"Statement {PERIOD}").click()
        shot("04_statement.png", "the statement: balances, credits with their lineage")
        scroll_to("Plots")
        shot("05_statement_plots.png", "the statement's plots: value distribution, balance over time")
        sign_in("acme-labs")
        shot("06_buyer_dashboard.png", "buyer: its campaigns")
        driver.find_element(By.LINK_TEXT, "python-docs-helper").click()
        shot("07_campaign_selection.png", "a campaign: the selection download, validation, value by provider")
        scroll_to("Top")
        shot("08_campaign_top_samples.png", "the campaign's top samples by score")
        sign_in("ops")
        shot("09_operator.png", "operator: ledger check, catalog, campaigns with their runs and champion")
        scroll_to("Audit trail")
        shot("10_operator_audit.png", "operator: providers and the audit trail")
    return shots


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=RESULTS, help="Folder for the PNGs.")
    args = ap.parse_args()
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None and not Path(f"/usr/bin/{tool}").exists():
            raise SystemExit(f"{tool} is not installed: run `bash infra/bootstrap.sh` as root (Debian packages "
                             "chromium, chromium-driver)")
    with tempfile.TemporaryDirectory(prefix="mkt-portal-shots-") as tmp:
        home = Path(tmp) / "home"
        os.environ["MKT_HOME"] = str(home)
        started = time.monotonic()
        market = build_market(home)
        built_s = time.monotonic() - started
        with serve(market.settings) as base:
            shots = take(base, market, args.out, Path(tmp))
    rows = [f"| [{name}]({name}) | {what} | {size / 1024:.0f} KB |" for name, what, size in sorted(shots)]
    publish_report([f"# Portal screenshots ({WIDTH}x{HEIGHT}, headless Chromium)", "",
                    f"Market built in {built_s:.1f} s; made by `benchmarks/portal_screenshots.py`.", "",
                    "| file | what it shows | size |", "|---|---|---:|", *rows, ""], args.out / "README.md")
    assert all(size <= MAX_PNG_BYTES for *_, size in shots), "a screenshot is over 200 KB"


if __name__ == "__main__":
    main()
