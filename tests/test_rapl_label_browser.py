"""The labelling page records a ranking made by clicking in a real headless browser (Debian's chromium).

No request is mocked: chromium loads the page from the loopback server, shows the three GIF videos, and the test
clicks them in an order of its choosing and presses Submit; the store must then hold exactly that ranking.
CI installs ``chromium`` and ``chromium-driver`` (apt) before the suite; without them the test skips locally and
fails under CI=true, so a missing install step cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from robo_reward.labelling import LabelSession, make_server
from robo_reward.preferences import PreferenceStore, load_triplets

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture()
def browser():  # type: ignore[no-untyped-def]
    if not (CHROMIUM and DRIVER):
        message = "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _frames(n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (n, 4, 16, 16, 3), dtype=np.uint8)


def test_clicked_ranking_is_recorded(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    store = PreferenceStore(tmp_path / "human.jsonl")
    session = LabelSession(_frames(), store, dataset="test.npz", seed=3)
    server = make_server(session, 0)
    assert server.server_address[0] == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        wait = WebDriverWait(browser, 30)
        wait.until(ec.presence_of_element_located((By.ID, "card-2")))
        wait.until(lambda d: all(d.execute_script(f"return document.querySelector('#card-{k} img').complete && "
                                                  f"document.querySelector('#card-{k} img').naturalWidth > 0")
                                 for k in range(3)))
        shown = [int(browser.find_element(By.ID, f"card-{k}").get_attribute("data-item")) for k in range(3)]
        for k in (2, 0, 1):
            browser.find_element(By.ID, f"card-{k}").click()
        assert browser.find_element(By.ID, "rank-2").text == "1st (best)"
        browser.find_element(By.ID, "submit").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "1 triplets recorded"))
        browser.find_element(By.ID, "equal").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "2 triplets recorded"))
    finally:
        server.shutdown()
        server.server_close()
    triplets = load_triplets(store)
    assert [t.ranking for t in triplets[:1]] == [(shown[2], shown[0], shown[1])]
    assert not triplets[0].equal and triplets[1].equal
    assert triplets[0].meta["labeller"] == "human"
    assert store.counts() == {"win": 3, "lose": 0, "equal": 3}


def test_server_refuses_a_bad_ranking(tmp_path: Path) -> None:
    import json
    import urllib.error
    import urllib.request

    session = LabelSession(_frames(), PreferenceStore(tmp_path / "h.jsonl"))
    server = make_server(session, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        gif = urllib.request.urlopen(f"{url}/video/1.gif").read()
        assert gif[:6] == b"GIF89a"
        request = urllib.request.Request(f"{url}/api/rank", data=json.dumps(
            {"items": [0, 1, 2], "ranking": [0, 1, 1]}).encode(), method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request)
        assert err.value.code == 400
    finally:
        server.shutdown()
        server.server_close()
    assert len(session.store) == 0
