"""The learning loop on the demo, end to end on the CPU, as a user runs it: the small demo model
on a camera mounted farther away than it was trained for (smaller shapes) keeps the frames it
is unsure of; a person labels them on the review page (headless Chromium, each frame's true
label taken from the video's ground truth); `edgeswin finetune` makes a new model; top-1 on
another unseen video rises by a clear margin while top-1 on the scenes it knew stays; and the
new model, replacing the served file, is promoted by the daemon's shadow gate on live frames.
benchmarks/learning_loop.py runs the same loop larger, on a GPU (benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import pytest

from edgeswin.demo.assets import VideoSpec, make_image_folder, make_video
from edgeswin.demo.learning import far_video, frames_folder, true_label
from edgeswin.toolchain.evaluate import evaluate
from tests.harness import REPO, SMALL, start_review, stop, write_config

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
pytest.importorskip("torch")


def edgeswin(*args: str, timeout: float = 900) -> str:
    run = subprocess.run([sys.executable, "-m", "edgeswin", *args], capture_output=True,
                         text=True, timeout=timeout, cwd=REPO)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def removed(card):
    """A wait condition: the card has left the page. Selenium's `staleness_of` expects a
    StaleElementReferenceException, but Chromium's driver sometimes answers a removed node
    with "Node with given id does not belong to the document" as an unknown error instead."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    def check(_driver) -> bool:
        try:
            card.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False
    return check


def label_every_frame_in_the_browser(driver, address: str, hard, video) -> int:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(address)
    labelled = 0
    # Cards are looked for, not the end: an element that is absent costs the implicit wait.
    while cards := driver.find_elements(By.CSS_SELECTOR, ".card"):
        card = cards[0]
        truth = true_label(hard / card.get_attribute("data-key"), video)
        card.find_element(By.CSS_SELECTOR, f'button[value="{truth}"]').click()
        WebDriverWait(driver, 10, poll_frequency=0.02).until(removed(card))
        labelled += 1
    assert driver.find_elements(By.ID, "empty")
    return labelled


def test_hard_examples_reviewed_and_fine_tuned_make_a_better_model_that_the_gate_promotes(
        tmp_path, broker, subscriber, browser, daemon_factory):
    collect = far_video(tmp_path / "far-collect.mp4", 240, seed=101, fps=4)
    unseen = frames_folder(far_video(tmp_path / "far-unseen.mp4", 60, seed=202, fps=4),
                           tmp_path / "far-unseen", every=1)
    known = make_image_folder(tmp_path / "near", 20, seed=6, width=320, height=180)
    base = make_image_folder(tmp_path / "base", 80, seed=5, width=320, height=180)

    # 1. The device: the small model serves the far camera and keeps what it is unsure of.
    served = tmp_path / "models" / "served.onnx"
    served.parent.mkdir()
    shutil.copy(SMALL, served)
    shutil.copy(SMALL.with_suffix(".json"), served.with_suffix(".json"))
    cfg = write_config(tmp_path / "collect", broker.port,
                       {"far": {"source": str(collect), "fps": 0, "realtime": False}},
                       {"engines": [{"name": "primary", "model": str(served)}],
                        "hard_examples": {"enabled": True, "below_score": 0.9,
                                          "min_interval_s": 0}})
    edgeswin("run", "-c", str(cfg), timeout=600)  # to the end of the file
    hard = cfg / "state" / "hard"
    kept = sorted(hard.glob("*/*.jpg"))
    assert len(kept) >= 150, f"only {len(kept)} hard examples"

    # 2. A person labels them on the review page.
    proc, address = start_review("--examples", str(hard), "--model", str(served))
    try:
        labelled = label_every_frame_in_the_browser(browser, address, hard, collect)
    finally:
        out = stop(proc)
    assert labelled == len(kept), out
    reviewed = hard.parent / "reviewed"
    assert len(list(reviewed.glob("*/*.jpg"))) == len(kept)
    wrong = sum(1 for p in reviewed.glob("*/*.jpg")
                if json.loads(p.with_suffix(".json").read_text())["review"]["given"]
                != p.parent.name)
    assert wrong > len(kept) // 4, "the model was not weak on these frames"

    # 3. Fine-tune, with a sample of what the model knew against forgetting.
    new = tmp_path / "new" / "served-finetuned.onnx"
    said = edgeswin("finetune", "--from", str(served), "--data", str(reviewed), "--base-data",
                    str(base), "--out", str(new), "--epochs", "15", "--flips", "hv",
                    "--holdout", "0.1", "-o", str(tmp_path / "finetune.json"))
    assert "held-out top-1" in said and new.is_file(), said
    meta = json.loads(new.with_suffix(".json").read_text())
    assert meta["labels"] == json.loads(SMALL.with_suffix(".json").read_text())["labels"]
    assert meta["finetune"]["images"]["train"] > 0 and meta["finetune"]["seed"] == 0

    # 4. On another unseen far video top-1 rises clearly; on the scenes it knew, it stays.
    before, after = evaluate(served, unseen), evaluate(new, unseen)
    near_before, near_after = evaluate(served, known), evaluate(new, known)
    print(f"far unseen top-1 {before.top1:.3f} -> {after.top1:.3f}; near {near_before.top1:.3f}"
          f" -> {near_after.top1:.3f}; {len(kept)} hard examples, {wrong} wrong")
    assert after.top1 >= before.top1 + 0.08, (before, after, said)
    assert near_after.top1 >= 0.9, (near_after, said)

    # 5. The update replaces the served file; the shadow gate compares the two on live frames
    # of the scenes the device saw until now, and promotes it.
    live = tmp_path / "near.mp4"
    make_video(live, VideoSpec(seconds=60, fps=15, width=320, height=180, seed=33))
    cfg = write_config(tmp_path / "serve", broker.port,
                       {"door": {"source": str(live), "fps": 0}},
                       {"engines": [{"name": "primary", "model": str(served)}],
                        "rollout": {"min_frames": 40, "watch_s": 2, "max_latency_ratio": 4}})
    daemon = daemon_factory(cfg)
    topic = "edgeswin/testdev/door/classification"
    assert subscriber.wait_for(lambda: len(subscriber.json_on(topic)) >= 5, 30), daemon.log()
    shutil.copy(new, served)
    shutil.copy(new.with_suffix(".json"), served.with_suffix(".json"))
    daemon.proc.send_signal(signal.SIGHUP)
    states = lambda: [m["state"] for m in subscriber.json_on("edgeswin/testdev/rollout")]  # noqa: E731
    assert subscriber.wait_for(lambda: "promoted" in states() or "rejected" in states(), 90), \
        daemon.log()[-3000:]
    verdict = next(m for m in subscriber.json_on("edgeswin/testdev/rollout")
                   if m["state"] in ("promoted", "rejected"))
    assert verdict["state"] == "promoted", verdict
    assert subscriber.wait_for(lambda: any(m["model"] == "served-finetuned" for m in
                                           subscriber.json_on(topic)), 30), daemon.log()[-2000:]
    assert daemon.terminate()[0] == 0
