"""The dashboard in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver, reading the replayed seeds from the real endpoint on 127.0.0.1.

It proves what an HTML string cannot: the stylesheet loads under the page's
Content-Security-Policy, the chart's SVG is drawn with no policy violation, the filter form
works without script, and the pages look as they should (screenshots under the test's temp
dir). Skips, saying why, where Chromium, its driver or Selenium is absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.observability import Endpoints, Metrics, ObservabilityServer
from monitor.store.log import EventStore
from monitor.web.app import WebUI
from monitor.web.browser import CHROMIUM, chromium_flags

WATCH = "nagorno-karabakh"


def chromedriver() -> str | None:
    found = shutil.which("chromedriver")
    return found or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)


def browser(profile: Path) -> Any:
    """A fresh headless Chromium with nothing that reaches the network on its own."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium chromium-driver)")
    driver_path = chromedriver()
    if driver_path is None:
        pytest.skip("chromedriver is absent (apt-get install chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in chromium_flags(profile):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver_path))


@pytest.fixture
def dashboard(replayed_seeds: str) -> Iterator[str]:
    store = EventStore(replayed_seeds, read_only=True)
    web = WebUI(store, lambda: [], lambda: {WATCH: "Nagorno-Karabakh conflict"})
    endpoints = Endpoints(Metrics(), lambda: (True, {}), lambda _feed: (404, "no"), web)
    server = ObservabilityServer("127.0.0.1:0", endpoints).start()
    yield f"http://{server.address}"
    server.stop()
    store.close()


@pytest.mark.timeout(180)
def test_overview_watch_page_and_alerts_in_chromium(dashboard: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = browser(tmp_path / "profile")
    try:
        driver.set_page_load_timeout(30)
        # A click that navigates may return before the new page is there (more so on a busy
        # machine): each one waits for the page it leads to, not for a length of time.
        arrived = WebDriverWait(driver, 30).until
        driver.get(dashboard + "/")
        assert driver.title == "Overview · monitor"
        card = driver.find_element(By.CSS_SELECTOR, "article.card")
        assert "963" in card.text and "Nagorno-Karabakh conflict" in card.text
        # the local stylesheet applied (a policy that refused it would leave this white)
        header = driver.find_element(By.CSS_SELECTOR, "header.top")
        assert header.value_of_css_property("background-color") == "rgba(32, 35, 42, 1)"
        driver.save_screenshot(str(tmp_path / "overview.png"))

        card.find_element(By.LINK_TEXT, "Nagorno-Karabakh conflict").click()
        arrived(until.url_contains(f"/watch/{WATCH}"))
        assert driver.current_url == f"{dashboard}/watch/{WATCH}"
        chart = driver.find_element(By.CSS_SELECTOR, 'svg.chart[data-side="armenian"]')
        assert chart.size["width"] > 300 and chart.size["height"] > 100
        series = chart.find_element(
            By.CSS_SELECTOR, 'g.series[data-series="armenian military killed"]'
        )
        assert series.get_attribute("data-totals") == "84 963"
        dots = series.find_elements(By.CSS_SELECTOR, "circle.total")
        assert len(dots) == 2 and all(d.is_displayed() for d in dots)
        tops = sorted(d.location["y"] for d in dots)
        assert tops[0] < tops[1]  # 963 is drawn above 84
        assert series.find_elements(By.CSS_SELECTOR, "rect.increment")  # the "+36"
        driver.save_screenshot(str(tmp_path / "watch.png"))

        # the filter form works with a plain GET, no script
        Select(driver.find_element(By.NAME, "type")).select_by_value("ceasefire")
        driver.find_element(By.CSS_SELECTOR, "form.filters button").click()
        arrived(until.url_contains("type=ceasefire"))
        facts = driver.find_elements(By.CSS_SELECTOR, "table.timeline tr.fact")
        assert facts and all("fact-ceasefire" in f.get_attribute("class") for f in facts)

        driver.find_element(By.LINK_TEXT, "Alerts").click()
        arrived(until.title_is("Alerts · monitor"))
        alerts = driver.find_elements(By.CSS_SELECTOR, "table.alerts tr.alert")
        assert len(alerts) == 9
        for row in alerts:
            links = row.find_elements(By.CSS_SELECTOR, "td.evidence a")
            assert links and "/seeds/pages/" in links[0].get_attribute("href")
        driver.save_screenshot(str(tmp_path / "alerts.png"))

        problems = [
            entry["message"]
            for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
        ]
        assert problems == []
    finally:
        driver.quit()
    for name in ("overview.png", "watch.png", "alerts.png"):
        assert (tmp_path / name).stat().st_size > 10_000
