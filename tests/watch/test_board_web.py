"""`edgeswin watch --web` in a real browser (Debian's Chromium), against a real daemon and
broker: the tiles appear and update, a covered camera's tile turns to a problem and back, the
plots hold the published points, live pictures come while the page is open and stop when it
closes, a stopped daemon shows offline, the page is reached by
keyboard, and hostile payloads from the broker neither break it nor inject markup. The test
takes the screenshot the docs show (`EDGESWIN_DOCS_SCREENSHOTS=1` writes it into docs/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import paho.mqtt.client as mqtt
import pytest

from edgeswin.demo import fixed_camera
from tests.harness import REPO, Subscriber, write_config
from tests.streams import free_port

ROOT = "edgeswin/testdev"
HOSTILE = 'x"><img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def start_board(broker_port: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "edgeswin", "watch", "--web", "--port",
                             str(broker_port), "--web-port", str(free_port()), "--every", "1",
                             "--stale-after", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    for line in proc.stdout:
        if line.startswith("open "):
            return proc, line.split()[1]
    raise AssertionError(f"the board did not start (exit {proc.wait()})")


def publish(port: int, messages: list[tuple[str, bytes, bool]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, payload, retain in messages:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


@pytest.mark.mqtt
def test_the_board_shows_cameras_health_plots_and_offline_and_resists_hostile_payloads(
        tmp_path, broker, videos, daemon_factory, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    door = fixed_camera.make(tmp_path / "door.mp4", 16, fps=10, events={"covered": (5, 11)})
    cfg = write_config(tmp_path / "cfg", broker.port, {
        "door": {"source": str(door), "loop": True, "fps": 5},
        "north": {"source": str(videos["north"]), "loop": True, "fps": 2}},
        {"stats_interval_s": 1, "health": {"covered_after_s": 1, "clear_after_s": 1},
         "snapshots": {"min_interval_s": 0.5}})
    daemon = daemon_factory(cfg)
    pictures = Subscriber(broker.port, f"{ROOT}/+/picture")
    board, address = start_board(broker.port)
    try:
        browser.get(address)
        wait = WebDriverWait(browser, 60)

        def tile(name: str):
            for t in browser.find_elements(By.CSS_SELECTOR, "article.tile"):
                if t.find_element(By.TAG_NAME, "h3").text == name:
                    return t
            return None

        # Tiles appear with a label, a picture and a healthy camera.
        wait.until(lambda _: tile("door") and tile("north") and tile("north").find_element(
            By.CSS_SELECTOR, ".label").text not in ("", "no label yet"))
        wait.until(lambda _: browser.execute_script(
            "return [...document.querySelectorAll('article.tile img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"))
        # The covered lens turns the door's tile to a problem, then back.
        wait.until(lambda _: "problem" in tile("door").get_attribute("class"))
        assert "covered" in tile("door").find_element(By.CSS_SELECTOR, ".health").text
        if os.environ.get("EDGESWIN_DOCS_SCREENSHOTS"):
            (REPO / "docs" / "images").mkdir(exist_ok=True)
            browser.save_screenshot(str(REPO / "docs" / "images" / "board.png"))
        browser.save_screenshot(str(tmp_path / "board-covered.png"))
        wait.until(lambda _: "problem" not in tile("door").get_attribute("class"))
        # The plots hold every point the page was given.
        with urllib.request.urlopen(address + "api/board", timeout=5) as answer:
            points = len(json.loads(answer.read())["devices"][0]["points"])
        assert points >= 3
        wait.until(lambda _: (browser.execute_script(
            f"return window.edgeswinPlotted[{json.dumps(ROOT)}]") or 0) >= points)
        assert len(browser.find_elements(By.CSS_SELECTOR, ".uplot")) == 4
        # While the page is open the device sends live pictures; none once it is closed.
        assert pictures.wait_for(lambda: len(pictures.on(f"{ROOT}/north/picture")) >= 2, 20)
        assert all(p[:2] == b"\xff\xd8" for p in pictures.on(f"{ROOT}/north/picture"))
        # Keyboard: Tab reaches the tiles.
        body = browser.find_element(By.TAG_NAME, "body")
        for _ in range(6):
            body.send_keys(Keys.TAB)
            if browser.switch_to.active_element.tag_name == "article":
                break
        assert browser.switch_to.active_element.tag_name == "article"

        # Hostile payloads from anything that can publish under the root.
        publish(broker.port, [
            ("edgeswin/evil/status", b"online", True),
            (f"edgeswin/evil/{HOSTILE}/availability", b"online", True),
            (f"edgeswin/evil/{HOSTILE}/state", json.dumps(
                {"label": HOSTILE, "score": 0.5, "since": HOSTILE}).encode(), True),
            ("edgeswin/evil/stats", b"not json {", False),
            ("edgeswin/evil/engine", b"[1, 2, 3]", True),
            ("edgeswin/evil/canary", b"\xff\xfe\x00", True),
            (f"edgeswin/evil/{HOSTILE}/snapshot", b"<svg onload=alert(1)>", True),
            ("edgeswin/evil/stats", b"{" + b" " * 400_000 + b"}", False)])
        wait.until(lambda _: any(HOSTILE in t.text for t in
                                 browser.find_elements(By.CSS_SELECTOR, "article.tile")))
        assert browser.execute_script("return window.pwned") is None
        assert not browser.find_elements(By.CSS_SELECTOR, "img[src='x'], main script")
        count = browser.find_element(By.ID, "summary").text
        assert count.startswith("2 device(s)"), count

        # The page closed: the server asks for 10 s more at most, each ask holds 10 s.
        browser.get("about:blank")
        time.sleep(22)
        sent = len(pictures.messages)
        time.sleep(5)
        assert len(pictures.messages) == sent, "pictures go on with no page open"
        browser.get(address)
        # A stopped daemon shows offline.
        assert daemon.terminate(timeout=15)[0] == 0
        wait.until(lambda _: any(
            s.find_element(By.CSS_SELECTOR, "h2").text.startswith(ROOT) and
            s.find_element(By.CSS_SELECTOR, ".badge").text == "offline"
            for s in browser.find_elements(By.CSS_SELECTOR, "section.device")))
        wait.until(lambda _: "offline" in tile("door").get_attribute("class"))
    finally:
        pictures.close()
        board.terminate()
        board.wait(20)
    assert board.returncode == 0
