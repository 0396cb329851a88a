"""The portal in a real browser: headless Chromium (Debian's ``chromium`` and ``chromedriver``, driven by
Selenium) against the real app served by uvicorn on a free loopback port, over a temporary store with the
API tests' priced market.

A provider signs in, uploads a file through the form (the page's script sends it with a progress bar), sees it
accepted with its quarantined record, and opens its statement with both plots drawn; it cannot reach a buyer's
page or another provider's statement by URL. A buyer opens its campaign (value by provider, top samples) and
downloads the selection. No page breaks its Content-Security-Policy (the browser's console says so).

Skipped only when Chromium, chromedriver or Selenium are missing and ``MKT_REQUIRE_BROWSER`` is unset; CI sets
it (``.ci/run``), so there a missing browser fails. ``infra/bootstrap.sh`` installs them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from marketplace import runtime
from marketplace.api import create_app
from tests.portal.helpers import FakeRegistry
from tests.support.api import Market, api_settings, bearer, build_market, echo_launcher, jsonl

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _missing() -> list[str]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    return missing


def _browser_or_skip() -> None:
    missing = _missing()
    if not missing:
        return
    message = f"no browser for the portal tests: {', '.join(missing)} missing (bash infra/bootstrap.sh installs them)"
    if os.environ.get("MKT_REQUIRE_BROWSER"):
        pytest.fail(f"MKT_REQUIRE_BROWSER is set but there is {message}")
    pytest.skip(message)


def test_a_missing_browser_skips_only_when_mkt_require_browser_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.portal.test_browser as this

    monkeypatch.setattr(this, "CHROMEDRIVER", "/nonexistent/chromedriver")
    monkeypatch.delenv("MKT_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromedriver missing"):
        _browser_or_skip()
    monkeypatch.setenv("MKT_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="MKT_REQUIRE_BROWSER is set"):
        _browser_or_skip()


@dataclass
class Served:
    base: str
    market: Market
    app: Any


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The real app under uvicorn in a thread, on a fresh SQLite store with the priced market."""
    _browser_or_skip()
    import uvicorn

    folder = tmp_path_factory.mktemp("portal-browser")
    app = create_app(api_settings(folder, f"sqlite:///{folder / 'store.db'}"), revalue_launcher=echo_launcher())
    app.state.portal.state.model_registry = FakeRegistry
    market = build_market(app.state.session_factory)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="portal-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}", market, app)
    finally:
        server.should_exit = True
        thread.join(10)
        runtime.reset()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(served: Served, downloads: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,900", "--disable-extensions", "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 15.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def _sign_in(driver: Any, served: Served, who: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{served.base}/")
    _wait(driver, lambda d: "/portal/sign-in" in d.current_url)
    driver.find_element(By.ID, "token").send_keys(served.market.tokens[who])
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    _wait(driver, lambda d: "/portal/sign-in" not in d.current_url)


# Records, in the tab's sessionStorage (it outlives the navigation), that the page's script sent the upload with
# XMLHttpRequest and that upload progress events arrived.
_WATCH_UPLOAD = """
const send = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.send = function (body) {
  sessionStorage.setItem('xhr-sent', new URL(this.__url || location.href).pathname);
  this.upload.addEventListener('progress', (e) => sessionStorage.setItem('xhr-progress', String(e.loaded)));
  return send.apply(this, arguments);
};
const open = XMLHttpRequest.prototype.open;
XMLHttpRequest.prototype.open = function (method, url) { this.__url = url; return open.apply(this, arguments); };
"""


def _csp_violations(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]


def test_a_provider_uploads_sees_its_quarantine_and_opens_its_statement(served: Served, browser: Any,
                                                                          tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _sign_in(browser, served, "alice")
    assert browser.current_url.endswith("/portal/provider")
    dashboard = _text(browser)
    assert "alice" in dashboard and "Owed to you" in dashboard and "alice-data.jsonl" in dashboard
    data = tmp_path / "browser-upload.jsonl"
    data.write_bytes(jsonl([{"text": f"a record sent from the browser about ledger postings, number {i}"}
                            for i in range(6)]) + b'{"text": ""}\n')
    browser.find_element(By.ID, "file").send_keys(str(data))
    browser.execute_script(_WATCH_UPLOAD)
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
    _wait(browser, lambda d: "/portal/provider/submissions/" in d.current_url)
    assert browser.current_url.endswith("?uploaded=accepted")
    sent = browser.execute_script("return [sessionStorage.getItem('xhr-sent'), sessionStorage.getItem('xhr-progress')]")
    assert sent[0] == "/portal/provider/upload" and int(sent[1]) > 0  # the script sent it and saw its progress
    page = _text(browser)
    assert "Your file was accepted." in page and "browser-upload.jsonl" in page
    quarantine = browser.find_element(By.ID, "quarantine").text
    assert "line 7" in quarantine and "empty_text" in quarantine

    browser.find_element(By.LINK_TEXT, "← alice").click()
    browser.find_element(By.LINK_TEXT, "Statement 2026-11").click()
    _wait(browser, lambda d: "/portal/provider/statements/2026-11" in d.current_url)
    assert "Statement for alice" in _text(browser)
    plots = browser.find_elements(By.CSS_SELECTOR, ".report img")
    assert len(plots) == 2 and all(browser.execute_script("return arguments[0].naturalWidth", p) > 100 for p in plots)
    assert browser.execute_script(  # the stylesheet applied (no inline style anywhere)
        "return getComputedStyle(document.querySelector('.topbar')).display") == "flex"
    assert _csp_violations(browser) == []


def test_a_provider_cannot_reach_a_buyers_page_or_another_providers_statement(served: Served, browser: Any) -> None:
    _sign_in(browser, served, "alice")
    camp = served.market.campaign_ids["camp-one"]
    bob_sub = served.market.submission_ids["bob"][0]
    browser.get(f"{served.base}/portal/buyer/campaigns/id:{camp}")
    assert "Not allowed" in _text(browser) and "403" in _text(browser)
    for path in ("/portal/provider/statements/2026-11?provider=bob", f"/portal/provider/submissions/{bob_sub}"):
        browser.get(served.base + path)
        page = _text(browser)
        assert "Not found" in page and "404" in page and "bob-data.jsonl" not in page
    browser.get(f"{served.base}/portal/operator")
    assert "Not allowed" in _text(browser)


def test_a_buyer_sees_its_campaign_and_downloads_the_selection(served: Served, browser: Any,
                                                               downloads: Path) -> None:
    import urllib.request

    from selenium.webdriver.common.by import By

    _sign_in(browser, served, "b-one")
    assert browser.current_url.endswith("/portal/buyer")
    campaigns = browser.find_element(By.ID, "campaigns").text
    assert "camp-one" in campaigns and "camp-two" not in campaigns
    browser.find_element(By.LINK_TEXT, "camp-one").click()
    page = _text(browser)
    assert "Value by provider" in page and "alice" in page and "bob" in page and "Top" in page
    field = browser.find_element(By.ID, "top")
    field.clear()
    field.send_keys("0.5")
    browser.find_element(By.XPATH, "//button[text()='Download JSONL']").click()
    name = f"selection_campaign{served.market.campaign_ids['camp-one']}_top0.5.jsonl"
    _wait(browser, lambda d: (downloads / name).is_file() and (downloads / name).stat().st_size > 0)
    rows = [json.loads(line) for line in (downloads / name).read_text(encoding="utf-8").splitlines()]
    request = urllib.request.Request(f"{served.base}/api/v1/campaigns/camp-one/selection?top=0.5",
                                     headers=bearer(served.market.tokens["b-one"]))
    with urllib.request.urlopen(request, timeout=10) as answer:  # the API's download of the same selection
        api_rows = [json.loads(line) for line in answer.read().decode("utf-8").splitlines()]
    assert rows == api_rows and len(rows) == 3
    browser.find_element(By.XPATH, "//button[text()='Sign out']").click()
    _wait(browser, lambda d: d.current_url.endswith("/portal/sign-in"))
    browser.get(f"{served.base}/portal/buyer")
    assert "/portal/sign-in" in browser.current_url
    assert _csp_violations(browser) == []
