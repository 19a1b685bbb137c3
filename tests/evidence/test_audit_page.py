"""The audit page in a real browser: `policyengine audit serve` (a subprocess, HTTPS with certificates
made for the test) over the golden SQLite trail, driven by Debian's headless Chromium through Selenium
and chromedriver: log in with the admin token, filter, open a decision and its re-derived explanation,
download the report, take a screenshot (printed; also docs/audit-page.png when
POLICYENGINE_DOCS_SCREENSHOT=1). Access without the token is checked with httpx over the same TLS.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from sqlalchemy import func, select

from evidence.conftest import Golden
from policyengine.api.tls import make_dev_certificates
from policyengine.audit.schema import audit_decision
from policyengine.audit.store import make_engine

pytestmark = pytest.mark.xdist_group("evidence-golden")
REPO = Path(__file__).resolve().parents[2]
TOKEN = "audit-page-test-token-0123456789abcdef"


@dataclass(frozen=True, slots=True)
class PageServer:
    base: str
    ca: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def page_server(golden_sqlite: Golden, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    where = tmp_path_factory.mktemp("audit-page")
    certs = make_dev_certificates(where / "tls")
    token_file = where / "admin.token"
    token_file.write_text(TOKEN + "\n")
    port = _free_port()
    command = [
        sys.executable, "-m", "policyengine.cli.main", "audit", "serve", "--db", golden_sqlite.url,
        "--port", str(port), "--tls-cert", str(certs.cert), "--tls-key", str(certs.key),
        "--admin-token-file", str(token_file), "--audit-signing-key", str(golden_sqlite.private_key),
        "--log-level", "warning",
    ]  # fmt: skip
    log = (where / "server.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=where)
    base = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(certs.ca_cert))
    try:
        for _ in range(300):
            if process.poll() is not None:
                pytest.fail(f"audit serve exited {process.returncode}: {(where / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(base + "/healthz", verify=trust, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("audit serve did not answer /healthz within 30 s")
        yield PageServer(base, certs.ca_cert)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_the_page_needs_the_admin_token(page_server: PageServer) -> None:
    trust = ssl.create_default_context(cafile=str(page_server.ca))
    with httpx.Client(base_url=page_server.base, verify=trust, follow_redirects=False) as client:
        anonymous = client.get("/audit?regime=PIPL")
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/audit/login?next=")
        assert client.get("/audit/download/report.pdf").status_code == 303
        wrong = client.post("/audit/login", data={"token": "nope", "next": "/audit"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        assert client.get("/audit", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        right = client.post("/audit/login", data={"token": TOKEN, "next": "https://evil.example/"})
        assert right.status_code == 303 and right.headers["location"] == "/audit"  # never off-site
        cookie = right.headers["set-cookie"]
        for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/audit"):
            assert attribute.lower() in cookie.lower(), cookie
        value = cookie.split(";")[0].split("=", 1)[1]
        client.cookies.set("pe_audit_session", value)
        assert client.get("/audit").status_code == 200
        client.cookies.set("pe_audit_session", value[:-1] + ("0" if value[-1] != "0" else "1"))  # forged
        assert client.get("/audit").status_code == 303
        client.cookies.clear()
        bad = client.get("/audit", params={"regime": "FOO"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert bad.status_code == 400 and "is not one of CCPA, GDPR, PIPL" in bad.text


def _sql_count(url: str, regime: str, outcome: str) -> int:
    engine = make_engine(url)
    t = audit_decision
    try:
        with engine.connect() as c:
            where = (t.c.regimes.like(f"%{regime}%"), t.c.decision == outcome)
            return int(c.execute(select(func.count()).select_from(t).where(*where)).scalar_one())
    finally:
        engine.dispose()


def test_a_dpo_logs_in_filters_opens_a_decision_and_downloads_the_report(
    page_server: PageServer, golden_sqlite: Golden, tmp_path: Path
) -> None:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.fail("chromium and chromedriver are required: run scripts/system-deps.sh")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                     f"--user-data-dir={tmp_path / 'profile'}", "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(argument)
    options.accept_insecure_certs = True  # the test's own CA; the TLS itself is real
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.get(page_server.base + "/audit")
        assert "/audit/login" in driver.current_url
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "login").click()
        assert driver.find_element(By.ID, "summary").text.startswith(f"{golden_sqlite.rows} decisions")

        Select(driver.find_element(By.ID, "regime")).select_by_visible_text("PIPL")
        Select(driver.find_element(By.ID, "outcome")).select_by_visible_text("deny")
        driver.find_element(By.ID, "apply").click()
        expected = _sql_count(golden_sqlite.url, "PIPL", "deny")
        assert driver.find_element(By.ID, "summary").text.startswith(f"{expected} decisions"), expected
        links = driver.find_elements(By.CSS_SELECTOR, "a.decision-link")
        assert links and all(link.text == "deny" for link in links)
        shot = tmp_path / "audit-page.png"
        driver.save_screenshot(str(shot))
        print(f"audit page screenshot: {shot}")
        if os.environ.get("POLICYENGINE_DOCS_SCREENSHOT") == "1":
            shutil.copyfile(shot, REPO / "docs" / "audit-page.png")
            print(f"copied to {REPO / 'docs' / 'audit-page.png'}")

        links[0].click()
        assert "PIPL" in driver.find_element(By.ID, "regimes").text
        assert "→" in driver.find_element(By.ID, "route").text
        assert driver.find_element(By.ID, "revision").text.startswith("sha256:")
        articles = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#violations td.article")]
        assert any("PIPL" in a or "DSL" in a for a in articles), articles
        steps = driver.find_elements(By.CSS_SELECTOR, "ol.explain-steps > li")
        recorded = set(driver.find_element(By.ID, "regimes").text.split(","))
        moved = driver.find_element(By.CSS_SELECTOR, "span.moved-regimes").text
        assert len(steps) >= 4 and set(moved.split(", ")) == recorded  # re-derived as recorded
        driver.save_screenshot(str(tmp_path / "decision.png"))
        print(f"decision screenshot: {tmp_path / 'decision.png'}")

        driver.find_element(By.LINK_TEXT, "Chain integrity").click()
        assert "Every chain verifies" in driver.find_element(By.ID, "integrity").text
        assert "Signed registry checked" in driver.find_element(By.ID, "integrity").text

        driver.back()
        driver.back()
        driver.find_element(By.ID, "download-report").click()
        report = None
        for _ in range(1200):  # the report of the filter is built on request
            done = [p for p in downloads.iterdir() if p.suffix == ".pdf"]
            if done:
                report = done[0]
                break
            time.sleep(0.1)
        assert report is not None, list(downloads.iterdir())
        assert report.read_bytes()[:5] == b"%PDF-"
        print(f"downloaded report: {report}")
    finally:
        driver.quit()
