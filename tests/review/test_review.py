"""`edgeswin review`: the page in a real headless Chromium (Debian's chromium and chromedriver,
driven by Selenium) confirms, relabels, discards and undoes by keyboard and mouse, and the
folders and the confusion matrix say so; the server refuses what it must (another Host, no
token off loopback, a decision without the page's form token); a server killed in the middle
of decisions loses no frame and duplicates none."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeswin.review.app import make_app
from edgeswin.review.confusion import Answers
from edgeswin.review.examples import Examples, move_atomic
from edgeswin.scenes import LABELS, NEAR, make_background, random_look, random_shape, render
from tests.harness import SMALL, form_token, start_review, stop
from tests.streams import free_port


def keep_frames(folder: Path, given: str, truths: list[str], seed: int) -> list[str]:
    """Rendered scenes of the true labels, kept as the daemon keeps hard examples: under the
    label the model gave, with a sidecar. Returns the file names."""
    rng = np.random.default_rng(seed)
    names = []
    (folder / given).mkdir(parents=True, exist_ok=True)
    for i, truth in enumerate(truths):
        look = random_look(rng)
        shape = None if truth == "empty" else random_shape(rng, truth, look, 320, 180, NEAR)
        image = render(shape, look, 320, 180, rng, make_background(look, 320, 180))
        name = f"20261203T0102{seed:02d}-{i:03d}-{i:03d}-door-frame"
        cv2.imwrite(str(folder / given / f"{name}.jpg"), image)
        (folder / given / f"{name}.json").write_text(json.dumps({
            "why": "top score 0.412 below 0.5", "camera": "door", "region": None,
            "label": given, "score": 0.412, "topk": [{"label": given, "score": 0.412}],
            "frame_ts": f"2026-12-03T01:02:{i:02d}.000+00:00", "frame_index": i}))
        names.append(f"{name}.jpg")
    return names


def files(folder: Path) -> dict[str, list[str]]:
    return {d.name: sorted(p.name for p in d.glob("*.jpg")) for d in sorted(folder.glob("*"))
            if d.is_dir() and any(d.glob("*.jpg"))}


def test_a_person_confirms_relabels_discards_and_undoes_in_a_browser(tmp_path, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    hard = tmp_path / "hard"
    circles = keep_frames(hard, "circle", ["circle", "square", "star"], 1)
    squares = keep_frames(hard, "square", ["square", "square"], 2)
    proc, address = start_review("--examples", str(hard), "--model", str(SMALL),
                                 "--port", str(free_port()))
    try:
        browser.get(address)
        # A decision that empties a page reloads it: elements found before go stale.
        wait = WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,))

        def waiting() -> int:
            return int(browser.find_element(By.ID, "waiting").text)

        assert waiting() == 5
        assert browser.find_element(By.CSS_SELECTOR, "#groups a.current").text.startswith("circle")
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.ENTER)  # first circle frame: the model was right
        wait.until(lambda _: waiting() == 4)
        body.send_keys(str(LABELS.index("square") + 1))  # second: it is a square
        wait.until(lambda _: waiting() == 3)
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("x")  # third: discarded; the circle group is empty, the page reloads
        wait.until(lambda _: browser.find_element(By.CSS_SELECTOR, "#groups a.current")
                   .text.startswith("square"))
        # The reloaded page shows the matrix of the two frames reviewed so far, as a table.
        cells = browser.find_elements(By.CSS_SELECTOR, "#matrix td")
        assert sum(int(td.text) for td in cells if td.text) == 2
        # The mouse: confirm the first square frame with its button.
        card = browser.find_elements(By.CSS_SELECTOR, ".card")[0]
        card.find_element(By.CSS_SELECTOR, "button.confirm").click()
        wait.until(lambda _: waiting() == 1)
        matrix = {(td.get_attribute("data-row"), td.get_attribute("data-col")): td.text
                  for td in browser.find_elements(By.CSS_SELECTOR, "#matrix td")}
        # Rows: what the person said; columns: the bundled small model's answers on the
        # frames, run by the review server. Three frames reviewed into the labelled folder.
        assert sum(int(v) for v in matrix.values() if v) == 3
        assert "swin-demo-64.onnx" in browser.find_element(By.ID, "matrix").text
        # Undo brings the last one back among the waiting frames.
        browser.find_element(By.TAG_NAME, "body").send_keys("u")
        wait.until(lambda _: waiting() == 2)
    finally:
        out = stop(proc)
    assert files(tmp_path / "reviewed") == {"circle": [circles[0]],
                                            "square": [circles[1]]}
    assert files(tmp_path / "discarded") == {"circle": [circles[2]]}
    assert files(hard) == {"square": squares}
    review = json.loads((tmp_path / "reviewed" / "square" / circles[1])
                        .with_suffix(".json").read_text())
    assert review["review"]["given"] == "circle" and review["review"]["label"] == "square"
    assert review["camera"] == "door"  # the device's sidecar travels with the frame
    assert "1 confirmed, 1 relabelled, 1 discarded, 2 waiting" in out


def test_off_loopback_a_token_is_required_and_printed(tmp_path):
    keep_frames(tmp_path / "hard", "star", ["star"], 3)
    port = free_port()
    proc, address = start_review("--examples", str(tmp_path / "hard"), "--host", "0.0.0.0",
                                 "--port", str(port), "--labels", ",".join(LABELS))
    try:
        assert "?token=" in address
        plain = f"http://127.0.0.1:{port}/"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(plain, timeout=5)
        assert refused.value.code == 401
        assert "token" in json.loads(refused.value.read())["error"]
        token = address.split("?token=")[1]
        with urllib.request.urlopen(urllib.request.Request(
                plain, headers={"Authorization": f"Bearer {token}"}), timeout=5) as page:
            assert b"The model said <em>star</em>" in page.read()
    finally:
        stop(proc)


def app_for(tmp_path: Path, loopback: bool = True, token: str | None = None):
    examples = Examples(tmp_path / "hard", tmp_path / "reviewed", tmp_path / "discarded")
    return make_app(examples, LABELS, Answers(LABELS), token, loopback).test_client()


def test_the_page_refuses_another_host_a_stale_form_and_an_unknown_label(tmp_path):
    name = keep_frames(tmp_path / "hard", "cross", ["cross"], 4)[0]
    client = app_for(tmp_path)
    # DNS rebinding: another name that resolves to 127.0.0.1 reaches nothing.
    assert client.get("/", headers={"Host": "attacker.example:8099"}).status_code == 421
    page = client.get("/", headers={"Host": "127.0.0.1:8099"})
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY"
    csrf = form_token(page.get_data(as_text=True))
    decision = {"key": f"cross/{name}", "label": "cross"}
    # Another site's form cannot know the per-run form token.
    assert client.post("/decide", json=decision).status_code == 403
    assert client.post("/decide", json=decision, headers={
        "X-CSRF-Token": csrf, "Origin": "http://attacker.example"}).status_code == 403
    assert client.post("/decide", json={**decision, "label": "../../etc"},
                       headers={"X-CSRF-Token": csrf}).status_code == 400
    assert client.post("/decide", json={**decision, "key": "cross/../../x.jpg"},
                       headers={"X-CSRF-Token": csrf}).status_code == 404
    assert client.get("/image/cross/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert (tmp_path / "hard" / "cross" / name).is_file()  # nothing moved by any of these
    done = client.post("/decide", json=decision, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200 and done.json["moved_to"] == f"cross/{name}"
    assert done.json["matrix"]["counts"] == {"cross": {"cross": 1}}


def test_a_frame_the_device_dropped_meanwhile_is_said_not_crashed_on(tmp_path):
    name = keep_frames(tmp_path / "hard", "empty", ["empty"], 5)[0]
    client = app_for(tmp_path)
    page = client.get("/")
    csrf = form_token(page.get_data(as_text=True))
    (tmp_path / "hard" / "empty" / name).unlink()  # the store's bound dropped it
    gone = client.post("/decide", json={"key": f"empty/{name}", "label": "empty"},
                       headers={"X-CSRF-Token": csrf})
    assert gone.status_code == 404 and "no longer waiting" in gone.json["error"]
    assert "Nothing waiting" in client.get("/").get_data(as_text=True)


def test_a_server_killed_between_decisions_loses_and_duplicates_nothing(tmp_path):
    hard = tmp_path / "hard"
    names = keep_frames(hard, "triangle", ["triangle"] * 40, 6)
    port = free_port()
    proc, address = start_review("--examples", str(hard), "--port", str(port),
                                 "--labels", ",".join(LABELS))
    page = urllib.request.urlopen(address, timeout=5).read().decode()
    csrf = form_token(page)
    decided = []

    def decide_all():
        for i, name in enumerate(names):
            label = "triangle" if i % 2 else "star"
            request = urllib.request.Request(
                f"{address}decide", method="POST", data=json.dumps(
                    {"key": f"triangle/{name}", "label": label}).encode(),
                headers={"Content-Type": "application/json", "X-CSRF-Token": csrf})
            try:
                urllib.request.urlopen(request, timeout=5).read()
                decided.append(name)
            except (urllib.error.URLError, ConnectionError, OSError):
                return

    worker = threading.Thread(target=decide_all)
    worker.start()
    while len(decided) < 10 and worker.is_alive():  # never past a worker that stopped
        time.sleep(0.01)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait()
    worker.join(timeout=30)
    everywhere = [p.name for p in tmp_path.rglob("*.jpg")]
    assert sorted(everywhere) == sorted(names), "a frame was lost or duplicated"
    for image in tmp_path.rglob("*.jpg"):
        assert image.with_suffix(".json").is_file(), f"{image} lost its sidecar"
    assert 10 <= len(decided) < len(names)
    reviewed = [p.name for p in (tmp_path / "reviewed").rglob("*.jpg")]
    assert set(decided) <= set(reviewed)  # every answered decision is on disk


def test_a_move_across_file_systems_is_whole_or_not_at_all(tmp_path):
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system here")
    source = tmp_path / "a.jpg"
    source.write_bytes(b"x" * 100_000)
    target = Path(f"/dev/shm/edgeswin-review-{os.getpid()}/star/a.jpg")
    try:
        move_atomic(source, target)
        assert target.read_bytes() == b"x" * 100_000 and not source.exists()
        assert not list(target.parent.glob(".*.part"))
    finally:
        shutil.rmtree(target.parent.parent, ignore_errors=True)


def test_labels_from_hostile_sidecars_cannot_name_a_folder_and_do_not_stop_the_page(tmp_path):
    from edgeswin.review.command import found_labels
    name = keep_frames(tmp_path / "hard", "star", ["star"], 7)[0]
    sidecar = (tmp_path / "hard" / "star" / name).with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["topk"] += [{"label": "../../etc"}, {"label": "a\u0000b"}, {"label": ".."},
                     {"label": "cross"}, {"label": 7}, "not a dict"]
    sidecar.write_text(json.dumps(meta))
    (tmp_path / "hard" / ".trash").mkdir()
    (tmp_path / "hard" / ".trash" / "x.jpg").write_bytes(b"\xff\xd8")
    assert found_labels(tmp_path / "hard") == ("cross", "star")
