"""The dashboard in a real headless browser (Debian's chromium, driven by Selenium through
Debian's chromedriver: nothing is downloaded) on three real nodes running the sample
task: the page lists the three nodes, the task's page advances to its pull request
without a reload, and a killed node turns dead on the page within the liveness timeout.

The test saves a screenshot of the page; with BZZZ_SCREENSHOT=1 it also writes it to
docs/dashboard.png (the README shows it)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from bzzz.lab.forge import LocalForge
from bzzz.lab.model import LabModelServer
from bzzz.lab.processes import wait_for
from tests import test_task_flow
from tests.claimlab import Workers
from tests.conftest import NodeFactory
from tests.test_task_flow import NODES, SOLVABLE, flow_mesh

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).parent.parent / "docs" / "dashboard.png"
forge = test_task_flow.forge
model = test_task_flow.model

webdriver = pytest.importorskip("selenium.webdriver")


@pytest.fixture
def browser() -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("no chromium and chromedriver (scripts/setup installs them)")
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_dashboard_lives_in_a_browser(  # noqa: PLR0917 - fixtures
    forge: LocalForge,
    model: LabModelServer,
    make_node: NodeFactory,
    pools: list[Workers],
    browser: object,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    driver = browser
    nodes = flow_mesh(make_node, forge, model)
    a = nodes[0]

    def text() -> str:
        return str(driver.find_element(By.TAG_NAME, "body").text)  # type: ignore[attr-defined]

    # The task's page, open before the task runs: it advances to the pull request live.
    driver.get(f"{a.dashboard_url}task?id={quote(SOLVABLE, safe='')}")  # type: ignore[attr-defined]
    driver.execute_script("window.notReloaded = true;")  # type: ignore[attr-defined]
    pools.extend(Workers(node, tmp_path / "unused.jsonl") for node in nodes)

    def pull_request_shown() -> bool:
        links = driver.find_elements(By.CSS_SELECTOR, "#timeline a, #record a.result")  # type: ignore[attr-defined]
        return any("/pull/" in str(link.get_attribute("href")) for link in links)

    wait_for(pull_request_shown, 120, "the task's page to show its pull request")
    assert driver.execute_script("return window.notReloaded === true;")  # type: ignore[attr-defined]
    assert "task_claimed" in text()
    wait_for(lambda: "node-b" in text() and "node-c" in text(), 30, "every node's reason")

    # The mesh page: three nodes; one killed turns dead without a reload.
    driver.get(a.dashboard_url)  # type: ignore[attr-defined]
    for name in NODES:
        assert driver.find_elements(By.CSS_SELECTOR, f'#nodes tr[data-node="{name}"]')  # type: ignore[attr-defined]
    assert driver.find_elements(By.CSS_SELECTOR, "#mesh svg g.node")  # type: ignore[attr-defined]
    driver.execute_script("window.notReloaded = true;")  # type: ignore[attr-defined]
    shot = tmp_path / "dashboard.png"
    driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
    nodes[2].kill()

    def shown_dead() -> bool:
        return bool(driver.find_elements(By.CSS_SELECTOR, '#mesh g.node.dead[data-node="node-c"]'))  # type: ignore[attr-defined]

    wait_for(shown_dead, 15, "node-c to turn dead on the page")
    assert driver.execute_script("return window.notReloaded === true;")  # type: ignore[attr-defined]
    assert shot.stat().st_size > 10_000
    if os.environ.get("BZZZ_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)
